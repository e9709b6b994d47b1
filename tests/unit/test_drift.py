import math
import socket
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import generate_latest

from lambdastack.feature_baseline import bin_of, build
from lambdastack.keys import KeyLayout
from lambdastack.settings import load_settings
from speed.drift import NO_BIN, bin_row, decode_bins, drift_writes, psi, report
from speed.metrics import FreshnessMetrics

pytestmark = pytest.mark.unit
BASELINE = {"item_pop": {"edges": [1.0, 3.0], "proportions": [0.5, 0.25, 0.25]}}
CONF = Path(__file__).resolve().parents[2] / "conf" / "lambdastack.yaml"


def test_bins_are_left_closed_and_features_without_a_baseline_get_no_bin():
    assert [bin_of([1.0, 3.0], x) for x in (0.0, 1.0, 2.9, 3.0, 9.0)] == [0, 1, 1, 2, 2]
    names = ("item_pop", "recency")
    assert bin_row([2.0, 5.0], names, BASELINE) == f"1,{NO_BIN}"
    assert bin_row([2.0, 5.0], names, {}) is None


def test_psi_is_zero_in_distribution_and_large_for_a_shift():
    assert psi([0.5, 0.25, 0.25], {0: 50, 1: 25, 2: 25}) == pytest.approx(0.0)
    shifted = psi([0.5, 0.25, 0.25], {2: 100})
    expected = (0.0001 - 0.5) * math.log(0.0001 / 0.5) + (0.0001 - 0.25) * math.log(0.0001 / 0.25)
    expected += (1 - 0.25) * math.log(1 / 0.25)
    assert shifted == pytest.approx(expected)
    assert psi([0.5, 0.5], {}) == 0.0


def test_report_alerts_only_on_a_large_enough_window():
    counts = decode_bins("item_pop 2 100;unknown 0 100")
    assert counts == {"item_pop": {2: 100}, "unknown": {0: 100}}
    r = report(60_000, counts, BASELINE, alert_at=0.2, min_events=100, view_version="v000001")
    assert set(r.psi) == {"item_pop"} and r.psi["item_pop"] > 0.2 and r.alert and r.events == 100
    assert not report(60_000, counts, BASELINE, 0.2, 101, "v000001").alert
    quiet = report(60_000, {"item_pop": {0: 50, 1: 25, 2: 25}}, BASELINE, 0.2, 1, None)
    assert not quiet.alert and quiet.psi == {"item_pop": 0.0}


def test_drift_writes_replace_the_hash_absolutely():
    r = report(60_000, {"item_pop": {2: 100}}, BASELINE, 0.2, 1, "v000002")
    writes = drift_writes(r, KeyLayout("ls"), 3600)
    assert writes[0].op == "del" and writes[0].key == "ls:drift"
    fields = {w.member: w.value for w in writes[1:]}
    assert fields == {
        "item_pop": r.psi["item_pop"],
        "alert": 1,
        "window_end_ms": 60_000,
        "events": 100,
        "view_version": "v000002",
    }
    assert all(w.ttl_s == 3600 and w.op == "hset" for w in writes[1:])


def test_the_batch_baseline_has_decile_bins_and_scores_its_own_sample_as_no_drift():
    rng = np.random.default_rng(3)
    rows = np.column_stack([rng.exponential(2.0, 5000), np.zeros(5000)])
    baseline = build(rows, ["item_pop", "constant"])
    pop = baseline["item_pop"]
    assert len(pop["edges"]) == 9 and pop["edges"] == sorted(pop["edges"])
    assert sum(pop["proportions"]) == pytest.approx(1.0)
    assert all(p == pytest.approx(0.1, abs=0.01) for p in pop["proportions"])
    assert baseline["constant"] == {"edges": [0.0], "proportions": [0.0, 1.0]}
    same = rng.exponential(2.0, 2000)
    assert psi(pop["proportions"], _counts(pop["edges"], same)) < 0.05
    assert psi(pop["proportions"], _counts(pop["edges"], same * 3)) > 0.2  # engagement tripled


def _counts(edges, xs) -> dict[int, int]:
    out: dict[int, int] = {}
    for x in xs:
        out[bin_of(edges, x)] = out.get(bin_of(edges, x), 0) + 1
    return out


def _drift_lines(text: str) -> list[str]:
    return sorted(line for line in text.splitlines() if line.startswith("lambdastack_speed_drift"))


def test_the_exporter_shows_the_newest_drift_report_only():
    metrics = FreshnessMetrics()  # not started: its registry is what the HTTP exporter serves
    baseline = {**BASELINE, "recency": {"edges": [1.0], "proportions": [0.5, 0.5]}}
    first = report(60_000, {"item_pop": {2: 100}, "recency": {0: 50, 1: 50}}, baseline, 0.2, 1, "v1")
    metrics.drift.observe(first)
    assert _drift_lines(generate_latest(metrics.registry).decode()) == [
        "lambdastack_speed_drift_alert 1.0",
        f'lambdastack_speed_drift_psi{{feature="item_pop"}} {first.psi["item_pop"]}',
        'lambdastack_speed_drift_psi{feature="recency"} 0.0',
    ]
    quiet = report(120_000, {"recency": {0: 50, 1: 50}}, baseline, 0.2, 1, "v1")
    metrics.drift.observe(quiet)
    assert _drift_lines(generate_latest(metrics.registry).decode()) == [
        "lambdastack_speed_drift_alert 0.0",
        'lambdastack_speed_drift_psi{feature="recency"} 0.0',
    ]


def test_speed_run_exports_each_drift_report_the_loader_computes(tmp_path):
    from speed.job import _companions

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        "LAMBDASTACK_STACK__STATE_DIR": str(tmp_path / "state"),
        "LAMBDASTACK_SPEED__METRICS_HOST": "127.0.0.1",
        "LAMBDASTACK_SPEED__METRICS_PORT": str(port),
        "LAMBDASTACK_SPEED__ARCHIVE_ENABLED": "false",
    }
    metrics, loader, archiver = _companions(load_settings(CONF, environ=env))
    assert metrics is not None and archiver is None
    try:
        loader._on_drift(report(60_000, {"item_pop": {2: 100}}, BASELINE, 0.2, 1, "v1"))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            lines = _drift_lines(r.read().decode())
    finally:
        metrics.stop()
    assert lines[0] == "lambdastack_speed_drift_alert 1.0"
    assert lines[1].startswith('lambdastack_speed_drift_psi{feature="item_pop"} ') and len(lines) == 2
