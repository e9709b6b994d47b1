"""The loader's routing of signal records to store writes, replayed into the in-memory store."""

import json

import pytest

from lambdastack.settings import load_settings
from lambdastack.speedstore.base import Write
from lambdastack.speedstore.memory import MemorySpeedStore
from speed.signal_router import SignalRouter

pytestmark = pytest.mark.unit
NOW_S = 10_000.0  # the loader's clock: 10,000,000 ms


def _settings(tmp_path):
    return load_settings(
        environ={
            "LAMBDASTACK_REDIS__KEY_PREFIX": "t",
            "LAMBDASTACK_DATA__VIEWS_DIR": str(tmp_path / "views"),
            "LAMBDASTACK_SPEED__TRENDING_WINDOW_S": "60",
            "LAMBDASTACK_SPEED__TRENDING_MIN_USERS": "3",
            "LAMBDASTACK_SPEED__TRENDING_MIN_Z": "2",
        }
    )


def _rec(key: dict, value: dict | None):
    return json.dumps(key).encode(), None if value is None else json.dumps(value).encode()


RECORDS = [
    _rec({"item_id": "i1", "bucket_ms": 7_200_000}, {"cnt": 2, "view": 0, "like": 2}),
    _rec({"kind": "min", "item_id": "i1", "minute_ms": 9_960_000}, {"cnt": 1, "view": 1}),
    _rec({"kind": "min", "item_id": "i1", "minute_ms": 9_960_000}, {"cnt": 2, "view": 2}),
    _rec({"kind": "min", "item_id": "i1", "minute_ms": 1_000_000}, {"cnt": 9, "view": 9}),  # expired
    _rec({"kind": "trend", "window_end_ms": 9_960_000}, {"items": "i1 3 3;i2 5 9;bot 1 400"}),
    _rec({"kind": "trend", "window_end_ms": 9_900_000}, {"items": "i3 4 4"}),  # an older window
    _rec({"kind": "future", "x": 1}, {"y": 2}),  # a kind this loader does not know: skipped
]


def _run(store: MemorySpeedStore, settings, records) -> None:
    router = SignalRouter(settings, store, clock=lambda: NOW_S)
    router.start()
    store.apply(router.writes(records))
    store.apply(router.prune_writes())


def test_records_become_absolute_minute_bucket_and_trending_state(tmp_path):
    settings = _settings(tmp_path)
    store = MemorySpeedStore.from_settings(settings)
    _run(store, settings, RECORDS)
    assert store.hash("t:item:i1") == {"7200000:*": b"2", "7200000:like": b"2"}
    assert store.hash("t:item:i1:min") == {"9960000:view": b"2", "9960000:*": b"2"}
    assert store.zset("t:trending:9960000") == {"i2": 4.0, "i1": 2.0}  # (users - 1) / sqrt(1)
    assert store.zset("t:trending:9900000") == {"i3": 3.0}
    assert store.get("t:trending:latest") == b"9960000"  # an older window does not move it back


def test_a_replay_by_a_fresh_loader_converges_to_the_same_state(tmp_path):
    settings = _settings(tmp_path)
    once, twice = MemorySpeedStore.from_settings(settings), MemorySpeedStore.from_settings(settings)
    _run(once, settings, RECORDS)
    _run(twice, settings, RECORDS[:5])
    _run(twice, settings, RECORDS)  # a restart replays everything after a crash
    assert once.dump() == twice.dump()


def test_minutes_past_the_retention_are_pruned(tmp_path):
    settings = _settings(tmp_path)
    store = MemorySpeedStore.from_settings(settings)
    store.apply([Write("hset", "t:item:i1:min", "60000:*", 5)])  # by an earlier loader, long expired
    _run(store, settings, RECORDS[1:3])
    assert store.hash("t:item:i1:min") == {"9960000:view": b"2", "9960000:*": b"2"}


def test_newest_per_key_keeps_the_last_record_of_each_key_in_the_order_of_those_records():
    from speed.loader import SignalRecord, newest_per_key

    recs = [
        SignalRecord(b"a", b"1", 1),
        SignalRecord(b"b", b"1", 2),
        SignalRecord(None, b"x", 3),
        SignalRecord(b"a", None, 4),
        SignalRecord(b"c", b"1", 5),
    ]
    assert newest_per_key(recs) == [recs[1], recs[3], recs[4]]
    assert newest_per_key([]) == []


def test_bucket_records_feed_the_live_total_since_the_current_as_of_and_a_replay_converges(tmp_path):
    from tests.unit.test_baseline import _version

    settings = _settings(tmp_path)
    _version(tmp_path / "views", "v000001", {"i1": 5})  # as of 10 h
    hour = 3_600_000
    records = [
        _rec({"item_id": "i1", "bucket_ms": 9 * hour}, {"cnt": 4}),  # before the as-of
        _rec({"item_id": "i1", "bucket_ms": 10 * hour}, {"cnt": 2}),
        _rec({"item_id": "i2", "bucket_ms": 11 * hour}, {"cnt": 1}),
        _rec({"item_id": "i1", "bucket_ms": 10 * hour}, {"cnt": 3}),
    ]
    once, twice = MemorySpeedStore.from_settings(settings), MemorySpeedStore.from_settings(settings)
    _run(once, settings, records)
    assert once.zset("t:since:36000000") == {"i1": 3.0, "i2": 1.0}
    _run(twice, settings, records[:3])
    _run(twice, settings, records)  # a fresh loader keeps the total it finds and replays into it
    assert once.dump() == twice.dump()
