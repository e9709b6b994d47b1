"""speed.baseline: item rates and the feature baseline of a version, followed through CURRENT."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lambdastack.versions import VersionLayout
from speed.baseline import Baseline, baseline_follower, item_rates

pytestmark = pytest.mark.unit
HOUR = 3_600_000


def _version(views, vid: str, events: dict[str, int], features: dict | None = None) -> None:
    vdir = views / "versions" / vid
    (vdir / "item_stats").mkdir(parents=True)
    pq.write_table(
        pa.table({"item_id": list(events), "events": list(events.values())}),
        vdir / "item_stats" / "p.parquet",
    )
    manifest = {"as_of_ms": 10 * HOUR, "input": {"min_event_ms": 0}}
    (vdir / "manifest.json").write_text(json.dumps(manifest))
    if features is not None:
        (vdir / "feature_baseline.json").write_text(json.dumps(features))
    (views / "CURRENT").write_text(vid)


def test_item_rates_are_events_per_hour_of_history_at_least_an_hour_long():
    assert item_rates({"a": 20}, as_of_ms=10 * HOUR, first_event_ms=0) == {"a": 2.0}
    assert item_rates({"a": 20}, as_of_ms=HOUR, first_event_ms=HOUR - 1) == {"a": 20.0}


def test_the_follower_rereads_the_baseline_when_current_changes(tmp_path):
    clock = [0.0]
    follower = baseline_follower(VersionLayout(tmp_path), check_s=5, clock=lambda: clock[0])
    assert follower.current() is None  # no version: the loader uses the empty Baseline()
    assert Baseline().version is None and Baseline().rates_per_hour == {}
    _version(tmp_path, "v000001", {"a": 20})
    assert follower.current() is None  # not looked at again before check_s
    clock[0] = 5.0
    b = follower.current()
    assert b is not None and b.rates_per_hour == {"a": 2.0} and b.features == {}
    _version(tmp_path, "v000002", {"a": 40}, {"item_pop": {"edges": [1.0], "proportions": [0.5, 0.5]}})
    clock[0] = 10.0
    b = follower.current()  # loaded by the call that notices the change
    assert (
        b is not None and (b.version, b.rates_per_hour["a"]) == ("v000002", 4.0) and "item_pop" in b.features
    )


def test_an_unreadable_version_keeps_the_last_good_baseline(tmp_path):
    clock = [0.0]
    _version(tmp_path, "v000001", {"a": 20})
    follower = baseline_follower(VersionLayout(tmp_path), check_s=1, clock=lambda: clock[0])
    assert follower.current() is not None and follower.version == "v000001"
    (tmp_path / "CURRENT").write_text("v000009")  # names a version that is not there
    clock[0] = 2.0
    b = follower.current()
    assert b is not None and b.version == "v000001"
