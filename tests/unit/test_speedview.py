"""The speed-view codecs: user fields, buckets and minute windows, the feed reply."""

import pytest

from lambdastack.keys import KeyLayout
from lambdastack.speedview import (
    MINUTE_MS,
    FreshCandidates,
    Interaction,
    buckets_since,
    decode_feed_reply,
    decode_fresh,
    decode_recent,
    decode_signals_reply,
    encode_fresh,
    encode_recent,
    merge_bucket_replies,
    minute_windows,
    parse_user,
)

pytestmark = pytest.mark.unit
H = 3_600_000
T0 = 1_795_870_800_000  # a minute start


def test_recent_round_trips_and_is_byte_stable():
    recent = [Interaction("i1", "view", 0.0, 1000), Interaction("i2", "rating", 4.5, 2000)]
    raw = encode_recent(recent)
    assert decode_recent(raw) == recent
    assert encode_recent(decode_recent(raw.encode())) == raw
    assert decode_recent(None) == []


def test_fresh_round_trips():
    fresh = FreshCandidates("v000002", "v000002", 5000, (("a", 0.9), ("b", 0.25)))
    assert decode_fresh(encode_fresh(fresh)) == fresh
    assert decode_fresh(b"") is None


def test_user_and_trending_keys_share_the_prefix():
    keys = KeyLayout("ls")
    assert keys.user("u1") == "ls:user:u1"
    assert keys.item_minutes("i1") == "ls:item:i1:min"
    assert keys.trending(60000) == "ls:trending:60000"
    assert keys.trending_latest() == "ls:trending:latest"
    assert keys.drift() == "ls:drift"


def test_buckets_start_at_the_as_of_and_are_bounded():
    assert buckets_since(10 * H, 12 * H + 5, 3600, 48) == [10 * H, 11 * H, 12 * H, 13 * H]
    assert buckets_since(0, 100 * H, 3600, 3) == [99 * H, 100 * H, 101 * H]


def test_bucket_replies_sum_candidates_and_movers():
    replies = [
        [(b"a", 3.0), (b"z", 1.0)],
        [3.0, None],  # bucket 1: movers, zmscore of [a, b]
        [(b"b", 4.0)],
        [None, 4.0],  # bucket 2
    ]
    counts, movers = merge_bucket_replies(["a", "b"], replies, 2, 10)
    assert counts == {"a": 3, "b": 4, "z": 1}
    assert movers == (("b", 4), ("a", 3), ("z", 1))


def test_minute_windows_sum_the_last_minutes():
    now = 1_000 * 60_000 + 30_000
    raw = {
        f"{1000 * 60_000}:*".encode(): b"2",
        f"{1000 * 60_000}:view".encode(): b"2",
        f"{995 * 60_000}:*".encode(): b"5",
        f"{950 * 60_000}:*".encode(): b"7",
        f"{900 * 60_000}:*".encode(): b"100",
    }
    w = minute_windows(raw, now)
    assert w["1m"] == {"*": 2, "view": 2} and w["10m"]["*"] == 7 and w["1h"]["*"] == 14


def test_user_fields_decode_and_garbage_is_ignored():
    recent = [Interaction("i1", "view", 1.0, 5)]
    fresh = FreshCandidates("v1", "v1", 7, (("i2", 0.5),))
    assert parse_user(encode_recent(recent).encode(), encode_fresh(fresh)) == (tuple(recent), fresh)
    assert parse_user(b"{not json", b"[1]") == ((), None)


def test_the_feed_script_reply_decodes_with_empty_tables_as_lists():
    recent = encode_recent([Interaction("i1", "view", 1.0, 5)])
    reply = {
        "recent": recent,
        "fresh": None,
        "trending_end": 600,
        "trending": [["t1", 2.5]],
        "counts": [3, False, 4],
        "movers": [["m", 2], ["a", 3], ["z", 3]],
        "seen": ["i1", "i7"],
    }
    read = decode_feed_reply(reply, ["a", "b", "c"], 2)
    # a candidate no bucket holds has no count; a mover's total counts for it too; ties by id
    assert read.ok and read.counts == {"a": 3, "c": 4, "m": 2, "z": 3}
    assert read.movers == (("a", 3), ("z", 3))
    assert read.trending == (("t1", 2.5),) and read.trending_end_ms == 600
    assert read.recent == (Interaction("i1", "view", 1.0, 5),) and read.fresh is None
    assert read.seen == frozenset({"i1", "i7"}) and not read.from_total  # no `live`: the buckets
    assert decode_feed_reply({**reply, "live": "total"}, ["a", "b", "c"], 2).from_total
    assert not decode_feed_reply({**reply, "live": "buckets"}, ["a", "b", "c"], 2).from_total
    empty = decode_feed_reply(
        {
            "recent": None,
            "fresh": None,
            "trending_end": None,
            "trending": {},
            "counts": {},
            "movers": {},
            "seen": {},
        },
        [],
        5,
    )
    assert empty.ok and empty.counts == {} and empty.trending_end_ms is None and empty.seen == frozenset()
    with pytest.raises(ValueError, match="counted 1 of 2"):
        decode_feed_reply({**reply, "counts": [1]}, ["a", "b"], 2)


def test_minute_windows_take_the_newest_minutes_up_to_now_and_not_a_minute_after_it():
    minutes = {
        f"{T0}:view": 2,
        f"{T0}:*": 3,
        f"{T0}:like": 1,
        f"{T0 - MINUTE_MS}:*": 4,
        f"{T0 - 9 * MINUTE_MS}:*": 5,
        f"{T0 - 10 * MINUTE_MS}:*": 6,
        f"{T0 - 59 * MINUTE_MS}:*": 7,
        f"{T0 - 60 * MINUTE_MS}:*": 100,  # older than the hour: in no window
        f"{T0 + MINUTE_MS}:*": 1000,  # after now: in no window
    }
    got = minute_windows(minutes, now_ms=T0 + 30_000)
    assert got["1m"] == {"view": 2, "*": 3, "like": 1}
    assert got["10m"] == {"view": 2, "*": 3 + 4 + 5, "like": 1}
    assert got["1h"] == {"view": 2, "*": 3 + 4 + 5 + 6 + 7, "like": 1}


def test_minute_windows_read_redis_bytes_and_custom_windows():
    minutes = {f"{T0}:*".encode(): b"3", f"{T0 - MINUTE_MS}:*".encode(): b"4"}
    assert minute_windows(minutes, T0, {"1m": 1, "2m": 2}) == {"1m": {"*": 3}, "2m": {"*": 7}}
    assert minute_windows({}, T0) == {"1m": {"*": 0}, "10m": {"*": 0}, "1h": {"*": 0}}


def test_the_signals_script_reply_decodes_per_user_and_per_item():
    recent = encode_recent([Interaction("i1", "view", 1.0, 5)])
    reply = {"recent": [recent, None], "counts": [3, False], "movers": {}, "live": "total"}
    users, counts, from_total = decode_signals_reply(reply, ["u1", "u2"], ["a", "b"])
    assert users == {"u1": (Interaction("i1", "view", 1.0, 5),), "u2": ()}
    assert counts == {"a": 3} and from_total
    empty = decode_signals_reply({"recent": {}, "counts": {}, "movers": {}, "live": "buckets"}, [], [])
    assert empty == ({}, {}, False)
    with pytest.raises(ValueError, match="read 1 of 2 users"):
        decode_signals_reply({**reply, "recent": [recent]}, ["u1", "u2"], ["a", "b"])
    with pytest.raises(ValueError, match="counted 2 of 1"):
        decode_signals_reply(reply, ["u1", "u2"], ["a"])
