"""`lambdastack bench soak` for two minutes (the 30-minute soak at 1,000 events/s and 200 feeds/s
is a benchmark, not part of the suite): the real stack under a steady load (300 events/s and 50
feeds/s here, so that the modules running beside it on the other worker keep their share of the
two cores), each process's memory every 10 s, no 5xx, and at the end Redis's counts and the
archive exactly what was sent."""

from __future__ import annotations

import json
import time
from itertools import pairwise

import pytest

from tests.integration import speed_versions
from tests.integration.helpers import run_cli

pytestmark = pytest.mark.integration


def _version(views) -> None:
    """A version with a model, neighbours and one known user (no Spark: the soak measures the
    speed and serving layers)."""
    items = {f"i{k}": 10 + k for k in range(40)}
    ring = {i: [f"i{(k + j) % 40}" for j in range(1, 8)] for k, i in enumerate(items)}
    model = speed_versions.ranker_model()
    speed_versions.publish(views, int(time.time() * 1000), items, neighbours=ring, model=model)


def test_a_two_minute_soak_serves_without_5xx_and_ends_exact(services, isolated, tmp_path):
    views, out = tmp_path / "soak-views", tmp_path / "soak.json"
    _version(views)
    argv = ["bench", "soak", "--minutes", "2", "--warmup-minutes", "1", "--views", str(views)]
    argv += ["--events-per-s", "300", "--feeds-per-s", "50"]
    done = run_cli([*argv, "--json", str(out)], isolated.env, timeout_s=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "[soak] 1.0 min:" in done.stdout  # progress, once a minute
    result = json.loads(out.read_text())
    targets = result["targets"]
    assert targets["server_errors"]["met"] and targets["counts_exact"]["met"], targets
    assert targets["archive_exact"]["met"], result["events"]
    events, feeds = result["events"], result["feeds"]
    assert events["events_sent"] == events["archived_distinct"] and events["per_s"] >= 270, events
    assert feeds["statuses"].get("200", 0) == feeds["requests"] and feeds["per_s"] >= 40, feeds
    assert feeds["connection_errors"] == 0 and feeds["api_cpu_ms_per_feed"] > 0, feeds
    assert events["speed_cpu_us_per_event"] > 0 and result["processes_vanished"] == []
    roles = {p["role"] for p in result["processes"]}
    assert {"api", "kafka", "redis", "speed_run", "speed_run.jvm"} <= roles, roles
    for p in result["processes"]:
        if p["role"] in ("api", "speed_run", "speed_run.jvm"):
            times = [t for t, _ in p["samples"]]
            assert len(times) >= 12 and all(9 <= b - a <= 15 for a, b in pairwise(times)), p
            after = [mb for t, mb in p["samples"] if t >= 60]
            assert p["rss_at_warmup_mb"] == after[0] and p["rss_max_after_mb"] == max(after), p
            assert p["growth"] == pytest.approx(max(after) / after[0] - 1, abs=1e-4)
    growth = targets["rss_growth_after_warmup"]
    others = [p["growth"] for p in result["processes"] if p["growth"] is not None and p["role"] != "redis"]
    assert growth["measured"] == max(others)  # Redis apart: its memory is the view's data
    dataset = result["redis_dataset"]
    assert len(dataset) >= 12 and all(d["redis_keys"] > 0 and d["redis_used_memory_mb"] > 0 for d in dataset)
    assert "server_errors: measured 0 (target 0): met" in done.stdout
