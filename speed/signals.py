"""Signal records (from the signals topic) to absolute store writes: the loader's pure core.

Every write sets a value (HSET/ZADD) or removes one; none increments, so applying the same
records again, in order, leaves Redis exactly as it was: replays after a crash converge.
"""

from __future__ import annotations

import orjson

from lambdastack.events import EVENT_TYPES
from lambdastack.keys import ALL_TYPES, KeyLayout
from lambdastack.speedstore.base import Write


def decode_counts(raw: bytes | None) -> dict[str, int] | None:
    """{type: count} of a count record, "*" for all types, types without events left out (a
    type's count never goes back to 0 within its bucket); None for a tombstone."""
    if raw is None:
        return None
    d = orjson.loads(raw)
    out = {ALL_TYPES: int(d["cnt"])}
    for t in EVENT_TYPES:
        if n := d.get(t):
            out[t] = int(n)
    return out


def _removals(key: str, start_ms: int) -> list[Write]:
    """HDELs of every type's field (and the all-types one) of one bucket or minute (a tombstone)."""
    return [Write("hdel", key, KeyLayout.item_field(start_ms, t)) for t in (ALL_TYPES, *EVENT_TYPES)]


def writes_for(
    item_id: str,
    bucket_ms: int,
    counts: dict[str, int] | None,
    layout: KeyLayout,
    totals: tuple[str, ...] = (),
) -> list[Write]:
    """The absolute writes of one item x hour bucket record: a field per type in the item's hash
    and the all-types count in the bucket's ZSET, whose change feeds the live `totals`
    (speed.totals.LiveTotals.totals_for of the bucket)."""
    item_key, bucket_key = layout.item(item_id), layout.bucket(bucket_ms)
    if counts is None:
        return [*_removals(item_key, bucket_ms), Write("zrem", bucket_key, item_id, totals=totals)]
    out = [Write("hset", item_key, KeyLayout.item_field(bucket_ms, t), n) for t, n in counts.items()]
    out.append(Write("zadd", bucket_key, item_id, counts[ALL_TYPES], totals=totals))
    return out


def minute_writes(
    item_id: str,
    minute_ms: int,
    counts: dict[str, int] | None,
    layout: KeyLayout,
    retention_ms: int,
    now_ms: int,
) -> list[Write]:
    """The absolute writes of one item x minute record; minutes older than the retention are not
    written (the loader deletes them anyway, see `stale_minute_fields`)."""
    key = layout.item_minutes(item_id)
    if counts is None:
        return _removals(key, minute_ms)
    if minute_ms < now_ms - retention_ms:
        return []
    ttl_s = retention_ms // 1000
    return [Write("hset", key, KeyLayout.item_field(minute_ms, t), n, ttl_s=ttl_s) for t, n in counts.items()]


def stale_minute_fields(fields: list[str], retention_ms: int, now_ms: int) -> list[str]:
    """Fields of a minute hash whose minute is older than the retention (to HDEL)."""
    out = []
    for f in fields:
        minute_ms, _ = KeyLayout.parse_item_field(f)
        if minute_ms < now_ms - retention_ms:
            out.append(f)
    return out
