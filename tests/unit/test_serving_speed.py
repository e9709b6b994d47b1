"""Pure parts of the speed-view reader and of /v1/predict parsing."""

from __future__ import annotations

import pytest

from lambdastack.features import FEATURE_NAMES
from lambdastack.usersignals import FreshCandidates, Interaction, encode_fresh, encode_recent
from serving.predict import parse_instance
from serving.speed_view import (
    buckets_since,
    decode_snapshot,
    merge_bucket_replies,
    minute_windows,
    parse_user,
)

pytestmark = pytest.mark.unit
H = 3_600_000


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


def test_predict_instances_are_checked_field_by_field():
    good = {n: 0.5 for n in FEATURE_NAMES}
    assert parse_instance({"features": good}).row == [0.5] * len(FEATURE_NAMES)
    assert parse_instance({"user_id": "u1", "item_id": "i1"}).pair == ("u1", "i1")
    bad = parse_instance({"features": {**good, "item_pop": "x", "colour": 1}}).error
    assert "features.item_pop: must be a finite number" in bad and "features.colour" in bad
    assert "item_id" in parse_instance({"user_id": "u1"}).error
    assert "user_id" in parse_instance({"user_id": "bad id", "item_id": "i"}).error
    assert parse_instance(["x"]).error == "instance: must be an object"


def test_the_snapshot_script_reply_decodes_with_empty_tables_as_lists():
    recent = encode_recent([Interaction("i1", "view", 1.0, 5)])
    reply = {
        "recent": recent,
        "fresh": None,
        "trending_end": 600,
        "trending": [["t1", 2.5]],
        "counts": [3, False, 4],
        "movers": [["m", 2], ["a", 3], ["z", 3]],
    }
    snap = decode_snapshot(reply, ["a", "b", "c"], 2)
    # a candidate no bucket holds has no count; a mover's total counts for it too; ties by id
    assert snap.ok and snap.counts == {"a": 3, "c": 4, "m": 2, "z": 3}
    assert snap.movers == (("a", 3), ("z", 3))
    assert snap.trending == (("t1", 2.5),) and snap.trending_end_ms == 600
    assert snap.recent == (Interaction("i1", "view", 1.0, 5),) and snap.fresh is None
    empty = decode_snapshot(
        {"recent": None, "fresh": None, "trending_end": None, "trending": {}, "counts": {}, "movers": {}},
        [],
        5,
    )
    assert empty.ok and empty.counts == {} and empty.trending_end_ms is None
    with pytest.raises(ValueError, match="counted 1 of 2"):
        decode_snapshot({**reply, "counts": [1]}, ["a", "b"], 2)
