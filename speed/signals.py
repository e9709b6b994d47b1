"""Signal records (from the signals topic) to absolute Redis writes: the loader's pure core.

Every write sets a value (HSET/ZADD) or removes one; none increments, so applying the same
records again, in order, leaves Redis exactly as it was: replays after a crash converge.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from lambdastack.keys import ALL_TYPES, KeyLayout, SignalKey


@dataclass(frozen=True, slots=True)
class Write:
    """One Redis operation: op in {"hset", "hdel", "zadd", "zrem", "set", "del"}; `value` for
    sets (an int, float or str); `ttl_s` overrides the default TTL of the key."""

    op: str
    key: str
    member: str = ""
    value: float | str | None = None
    ttl_s: int | None = None


def decode_key(raw: bytes) -> SignalKey:
    d = json.loads(raw)
    return SignalKey(str(d["item_id"]), int(d["bucket_ms"]), str(d["type"]))


def decode_count(raw: bytes | None) -> int | None:
    """The absolute count of a signal record; None for a tombstone."""
    if raw is None:
        return None
    return int(json.loads(raw)["cnt"])


def writes_for(key: SignalKey, count: int | None, layout: KeyLayout) -> list[Write]:
    item_key = layout.item(key.item_id)
    field = KeyLayout.item_field(key.bucket_ms, key.type)
    out = [Write("hdel", item_key, field)] if count is None else [Write("hset", item_key, field, count)]
    if key.type == ALL_TYPES:
        bucket_key = layout.bucket(key.bucket_ms)
        out.append(
            Write("zrem", bucket_key, key.item_id)
            if count is None
            else Write("zadd", bucket_key, key.item_id, count)
        )
    return out


def minute_writes(
    item_id: str,
    minute_ms: int,
    etype: str,
    count: int | None,
    layout: KeyLayout,
    retention_ms: int,
    now_ms: int,
) -> list[Write]:
    """The absolute write of one minute counter; minutes older than the retention are not written
    (the loader deletes them anyway, see `stale_minute_fields`)."""
    key, field = layout.item_minutes(item_id), KeyLayout.item_field(minute_ms, etype)
    if count is None:
        return [Write("hdel", key, field)]
    if minute_ms < now_ms - retention_ms:
        return []
    return [Write("hset", key, field, count, ttl_s=retention_ms // 1000)]


def stale_minute_fields(fields: list[str], retention_ms: int, now_ms: int) -> list[str]:
    """Fields of a minute hash whose minute is older than the retention (to HDEL)."""
    out = []
    for f in fields:
        minute_ms, _ = KeyLayout.parse_item_field(f)
        if minute_ms < now_ms - retention_ms:
            out.append(f)
    return out
