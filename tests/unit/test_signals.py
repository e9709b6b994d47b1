import json

import pytest

from lambdastack.keys import KeyLayout, SignalKey
from speed.signals import Write, decode_count, decode_key, minute_writes, stale_minute_fields, writes_for

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
        out.append((SignalKey("i1", 0, "view"), n))
        out.append((SignalKey("i1", 0, "*"), n))
    out.append((SignalKey("i2", 3600000, "*"), 5))
    out.append((SignalKey("i2", 3600000, "*"), None))  # retracted
    return out


def test_writes_are_absolute_and_the_last_value_wins():
    store = DictStore()
    for key, count in _records():
        store.apply(writes_for(key, count, LAYOUT))
    assert store.hashes["ls:item:i1"] == {"0:view": 3, "0:*": 3}
    assert store.zsets["ls:bucket:0"] == {"i1": 3}
    assert store.zsets["ls:bucket:3600000"] == {}


def test_replaying_records_converges_to_the_same_state():
    once, twice = DictStore(), DictStore()
    records = _records()
    for key, count in records:
        once.apply(writes_for(key, count, LAYOUT))
    for key, count in records[:4] + records:  # a replay of a prefix after a crash, then everything
        twice.apply(writes_for(key, count, LAYOUT))
    assert once.hashes == twice.hashes and once.zsets == twice.zsets


def test_decoding_the_upsert_kafka_records():
    key = json.dumps({"item_id": "i9", "bucket_ms": 7200000, "type": "like"}).encode()
    assert decode_key(key) == SignalKey("i9", 7200000, "like")
    assert decode_count(json.dumps({"item_id": "i9", "cnt": 4}).encode()) == 4
    assert decode_count(None) is None


def test_minute_writes_are_absolute_with_the_retention_ttl_and_skip_expired_minutes():
    now, retention = 10_000_000, 4_200_000
    (w,) = minute_writes("i1", 9_960_000, "view", 4, LAYOUT, retention, now)
    assert (w.op, w.key, w.member, w.value, w.ttl_s) == ("hset", "ls:item:i1:min", "9960000:view", 4, 4200)
    assert minute_writes("i1", now - retention - 60_000, "*", 4, LAYOUT, retention, now) == []
    assert minute_writes("i1", 9_960_000, "*", None, LAYOUT, retention, now) == [
        Write("hdel", "ls:item:i1:min", "9960000:*")
    ]


def test_stale_minute_fields_are_those_older_than_the_retention():
    fields = ["0:*", "0:view", "5940000:*", "6000000:like"]
    assert stale_minute_fields(fields, retention_ms=4_000_000, now_ms=10_000_000) == [
        "0:*",
        "0:view",
        "5940000:*",
    ]
