import math

import numpy as np
import pytest

from lambdastack.feature_baseline import bin_of, build
from lambdastack.keys import KeyLayout
from speed.drift import NO_BIN, bin_row, decode_bins, drift_writes, psi, report

pytestmark = pytest.mark.unit
BASELINE = {"item_pop": {"edges": [1.0, 3.0], "proportions": [0.5, 0.25, 0.25]}}


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
