"""`lambdastack bench batch` runs the real job and writes its figures as JSON."""

from __future__ import annotations

import json

import pytest

from tests.integration.helpers import run_cli

pytestmark = pytest.mark.integration


def test_bench_batch_writes_json(base_env, tmp_path):
    out = tmp_path / "batch.json"
    done = run_cli(
        ["bench", "batch", "--events", "2000", "--no-movielens", "--json", str(out)], base_env, 600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    (run,) = result["runs"]
    assert run["name"] == "synthetic-2000" and run["events"] <= 2000
    assert run["wall_s"] > 0 and run["peak_rss_mb"] > 100  # a JVM is in the tree
    stages = {"read", "content", "als", "profiles", "candidates", "training_set", "model"}
    assert stages <= set(run["stage_s"])
    assert run["rows"]["user_profiles"] > 0 and 0 <= run["model"]["pool_ndcg@10"] <= 1
    assert result["growth"] == []
