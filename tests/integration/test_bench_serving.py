"""`lambdastack bench serving` on a real API, Redis and version: every figure is there, and with a
baseline checkout (here this tree again) both APIs are measured in the same run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import SharedVersion
from tools.bench import serving

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_the_feed_is_measured_beside_a_baseline_with_its_cpu_per_request(shared_version: SharedVersion):
    views = shared_version.views_dir
    lines: list[str] = []
    got = serving.run(
        shared_version.iso.settings, views, (2,), 1, 1, echo=lines.append, baseline=(ROOT, views)
    )
    for point in (got["connections"]["2"], got["baseline"]["connections"]["2"]):
        for endpoint in ("feed", "trivial"):
            run = point[endpoint]
            assert run["rps"] > 0 and run["requests"] > 0 and run["non_2xx"] == 0, (endpoint, run)
            assert 0 < run["cpu_ms_per_request"] < 1000
    ratio = got["current_over_baseline"]["2"]
    assert ratio["feed_rps"] > 0 and ratio["feed_cpu_ms"] > 0
    assert ratio["pairs"]["feed_rps"] == [ratio["feed_rps"]]  # one repeat: one pair, its own median
    assert any(line.startswith("c=2: feed rps current/baseline") for line in lines)
    assert got["setup"]["baseline"] == {"code": str(ROOT), "views_dir": str(views)}
    assert any(line.startswith("baseline c=2: feed") for line in lines)
    assert got["version_load"]["users"] > 0
