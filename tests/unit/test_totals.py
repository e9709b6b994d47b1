"""speed.totals: the live totals since an as-of, started from the buckets, fed by bucket writes,
kept a while after CURRENT moved, then dropped; replayed into the in-memory store."""

from __future__ import annotations

import pytest

from lambdastack.keys import KeyLayout
from lambdastack.settings import load_settings
from lambdastack.speedstore.base import Write
from lambdastack.speedstore.memory import MemorySpeedStore
from speed.signals import writes_for
from speed.totals import LiveTotals

pytestmark = pytest.mark.unit
H = 3_600_000
T = 1_800_000_000_000  # an as-of (a bucket start)
SETTINGS = load_settings(environ={"LAMBDASTACK_REDIS__KEY_PREFIX": "t"})
KEYS = KeyLayout("t")
RETENTION_S = 48 * 3600
KEEP_S = 300


def totals(echo: list[str] | None = None) -> LiveTotals:
    said = [] if echo is None else echo
    return LiveTotals(KEYS, 3600, RETENTION_S, KEEP_S, said.append)


def bucket(store: MemorySpeedStore, live: LiveTotals, item: str, bucket_ms: int, n: int | None) -> None:
    counts = None if n is None else {"*": n}
    store.apply(writes_for(item, bucket_ms, counts, KEYS, live.totals_for(bucket_ms)))


def sum_since(store: MemorySpeedStore, as_of_ms: int, now_ms: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for b in range(as_of_ms, now_ms + H, H):
        for item, n in store.zset(KEYS.bucket(b)).items():
            out[item] = out.get(item, 0.0) + n
    return out


def test_a_new_total_starts_from_the_buckets_since_the_as_of_and_follows_every_bucket_write():
    store, live = MemorySpeedStore.from_settings(SETTINGS), totals()
    store.apply([Write("zadd", KEYS.bucket(T - H), "a", 9), Write("zadd", KEYS.bucket(T), "a", 2)])
    store.apply([Write("zadd", KEYS.bucket(T + H), "b", 3)])
    store.apply(live.follow(T, store, T + H + 5))
    assert store.zset(KEYS.since(T)) == {"a": 2.0, "b": 3.0}  # not the bucket before the as-of
    writes = [("a", T + H, 4), ("b", T + H, 5), ("a", T - H, 10), ("c", T + 2 * H, 1), ("b", T + H, None)]
    for item, b, n in writes:
        bucket(store, live, item, b, n)
        assert store.zset(KEYS.since(T)) == sum_since(store, T, T + 2 * H)
    before = store.dump()
    for item, b, n in writes[2:]:  # a replay after a crash: the same absolute values
        bucket(store, live, item, b, n)
    assert store.dump() == before


def test_a_writer_starting_on_an_as_of_whose_total_exists_keeps_it():
    store = MemorySpeedStore.from_settings(SETTINGS)
    # events of buckets past the retention, which exist no more, are in the total only
    store.apply([Write("zadd", KEYS.since(T), "a", 50), Write("zadd", KEYS.bucket(T + 60 * H), "a", 2)])
    live = totals()
    assert live.follow(T, store, T + 60 * H) == []
    bucket(store, live, "a", T + 60 * H, 3)
    assert store.zset(KEYS.since(T)) == {"a": 51.0}


def test_when_current_moves_the_previous_total_is_fed_for_a_while_then_dropped():
    store, live = MemorySpeedStore.from_settings(SETTINGS), totals()
    store.apply(live.follow(T, store, T + 10))
    bucket(store, live, "a", T, 2)
    bucket(store, live, "a", T + H, 1)
    now = T + H + 10
    store.apply(live.follow(T + H, store, now))  # CURRENT moved one bucket on
    assert store.zset(KEYS.since(T + H)) == {"a": 1.0}
    assert live.totals_for(T + H) == (KEYS.since(T), KEYS.since(T + H)) and live.totals_for(T) == (
        KEYS.since(T),
    )
    bucket(store, live, "a", T + H, 4)  # an API still on the previous version reads it exact
    assert store.zset(KEYS.since(T)) == {"a": 6.0} and store.zset(KEYS.since(T + H)) == {"a": 4.0}
    assert live.follow(T + H, store, now + KEEP_S * 1000 - 1) == []
    store.apply(live.follow(T + H, store, now + KEEP_S * 1000))
    assert store.zset(KEYS.since(T)) == {} and live.totals_for(T + H) == (KEYS.since(T + H),)


def test_current_moving_back_within_the_keep_time_takes_the_kept_total_up_again():
    store, live = MemorySpeedStore.from_settings(SETTINGS), totals()
    store.apply(live.follow(T, store, T + 10))
    bucket(store, live, "a", T, 2)
    store.apply(live.follow(T + H, store, T + H))
    bucket(store, live, "a", T + H, 1)
    assert live.follow(T, store, T + H + KEEP_S * 1000 + 1) == []  # not dropped, not started again
    assert store.zset(KEYS.since(T)) == {"a": 3.0}
    assert live.current == T and live.totals_for(T + H) == (KEYS.since(T + H), KEYS.since(T))


def test_an_as_of_older_than_the_retention_starts_from_the_buckets_kept_and_says_so():
    said: list[str] = []
    store, live = MemorySpeedStore.from_settings(SETTINGS), totals(said)
    now = T + 100 * H + 30
    store.apply([Write("zadd", KEYS.bucket(T + 10 * H), "a", 7)])  # gone in Redis; not read
    store.apply([Write("zadd", KEYS.bucket(now - now % H - H), "a", 2)])
    store.apply([Write("zadd", KEYS.bucket(now - now % H), "b", 1)])
    store.apply(live.follow(T, store, now))
    assert store.zset(KEYS.since(T)) == {"a": 2.0, "b": 1.0}
    (line,) = said
    assert line.startswith("the live total since 2027-01-15T08:00Z (t:since:1800000000000) starts from ")
    assert "the 2 bucket(s) that exist since 2027-01-17T12:00Z" in line
    assert "past the retention" in line
