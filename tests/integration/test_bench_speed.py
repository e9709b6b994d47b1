"""`lambdastack bench speed` at a tiny rate drives the real stack and writes a complete JSON."""

from __future__ import annotations

import json

import pytest

from tests.integration.helpers import run_cli

pytestmark = pytest.mark.integration


def test_the_speed_bench_writes_every_measure(services, isolated, tmp_path):
    out = tmp_path / "speed.json"
    done = run_cli(
        ["bench", "speed", "--rate", "400", "--seconds", "3", "--json", str(out)], isolated.env, timeout_s=600
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    result = json.loads(out.read_text())
    [run] = result["runs"]
    assert run["rate"] == 400 and run["sent"] >= 1200
    assert run["complete"] and run["counted"] == run["expected_counted"], run
    assert run["invalid_sent"] == 1 and run["dead_letters"] == 1, run
    fresh = run["freshness_ms"]
    assert fresh["n"] >= 40 and run["probes_lost"] == 0
    assert 0 < fresh["p50"] <= fresh["p95"] <= fresh["p99"] <= fresh["max"] < 30_000
    assert run["throughput_eps"] > 0 and run["produced_eps"] > 300
    assert run["cpu_cores"]["speed_job"] > 0 and set(run["cpu_cores"]) == {
        "speed_job",
        "bench",
        "kafka_redis",
    }
    assert set(run["backlog_events"]) == {"max", "mean"}
    [summary] = result["summary"]
    assert (
        summary["rate"] == 400 and summary["all_complete"] and summary["freshness_ms"]["p99"] == fresh["p99"]
    )
    assert result["machine"]["cpus"] >= 1 and result["config"]["bundle_time_ms"] > 0
    assert "rate 400.0:" in done.stdout
