import json

import pytest

from lambdastack.keys import KeyLayout
from speed.signals import Write, decode_counts, minute_writes, stale_minute_fields, writes_for

pytestmark = pytest.mark.unit
LAYOUT = KeyLayout("ls")


class DictStore:
    """A fake of the Redis signal writer over plain dicts (same interface: apply)."""

    def __init__(self):
        self.hashes: dict[str, dict[str, float]] = {}
        self.zsets: dict[str, dict[str, float]] = {}

    def apply(self, writes: list[Write]) -> None:
        for w in writes:
            table = self.hashes if w.op in ("hset", "hdel") else self.zsets
            if w.op in ("hset", "zadd"):
                table.setdefault(w.key, {})[w.member] = w.value
            else:
                table.get(w.key, {}).pop(w.member, None)


def _records():
    out = []
    for n in range(1, 4):
        out.append(("i1", 0, {"*": n, "view": n}))
    out.append(("i2", 3600000, {"*": 5, "like": 2, "view": 3}))
    out.append(("i2", 3600000, None))  # retracted
    return out


def test_writes_are_absolute_and_the_last_value_wins():
    store = DictStore()
    for item, bucket, counts in _records():
        store.apply(writes_for(item, bucket, counts, LAYOUT))
    assert store.hashes["ls:item:i1"] == {"0:view": 3, "0:*": 3}
    assert store.hashes["ls:item:i2"] == {}
    assert store.zsets["ls:bucket:0"] == {"i1": 3}
    assert store.zsets["ls:bucket:3600000"] == {}


def test_replaying_records_converges_to_the_same_state():
    once, twice = DictStore(), DictStore()
    records = _records()
    for item, bucket, counts in records:
        once.apply(writes_for(item, bucket, counts, LAYOUT))
    for item, bucket, counts in records[:2] + records:  # a replay of a prefix after a crash, then all
        twice.apply(writes_for(item, bucket, counts, LAYOUT))
    assert once.hashes == twice.hashes and once.zsets == twice.zsets


def test_decoding_a_count_record_keeps_the_types_that_occurred():
    value = json.dumps(
        {"item_id": "i9", "cnt": 4, "view": 3, "like": 1, "skip": 0, "max_event_ms": 9}
    ).encode()
    assert decode_counts(value) == {"*": 4, "view": 3, "like": 1}
    assert decode_counts(None) is None


def test_minute_writes_are_absolute_with_the_retention_ttl_and_skip_expired_minutes():
    now, retention = 10_000_000, 4_200_000
    w, total = minute_writes("i1", 9_960_000, {"view": 4, "*": 4}, LAYOUT, retention, now)
    assert (w.op, w.key, w.member, w.value, w.ttl_s) == ("hset", "ls:item:i1:min", "9960000:view", 4, 4200)
    assert (total.member, total.value) == ("9960000:*", 4)
    assert minute_writes("i1", now - retention - 60_000, {"*": 4}, LAYOUT, retention, now) == []
    assert Write("hdel", "ls:item:i1:min", "9960000:*") in minute_writes(
        "i1", 9_960_000, None, LAYOUT, retention, now
    )


def test_stale_minute_fields_are_those_older_than_the_retention():
    fields = ["0:*", "0:view", "5940000:*", "6000000:like"]
    assert stale_minute_fields(fields, retention_ms=4_000_000, now_ms=10_000_000) == [
        "0:*",
        "0:view",
        "5940000:*",
    ]
