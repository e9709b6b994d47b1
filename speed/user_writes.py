"""User-state records (from the users topic) to absolute Redis writes.

A record's key is {"user_id", "field"}; its value {..., "payload": ...} or a tombstone. Fields
`recent` and `fresh` are fields of the user's hash, each record the field's whole new value (a
tombstone deletes the field): `recent` payloads are window strings (speed.user_window), re-encoded
here with lambdastack.speedview.encode_recent; `fresh` payloads are already encoded
FreshCandidates. Field `seen:{item_id}` is an interaction with the item, its payload the event
time (epoch ms): a ZADD into the user's seen set, which each batch then trims to its newest
`seen_max` items. A key per (user, item) rather than a window per user: the users sink, the
loader and Kafka compaction keep only the newest record of a key, so a window would lose the
older interactions of a burst longer than itself, while an item's newest record is always kept.
No write depends on what Redis held, so a replay leaves the same state (an item's score is the
time of its newest record, whichever older ones were dropped; a trim keeps the same items as long
as a user's interactions with one item arrive in event-time order).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable

import orjson

from lambdastack.errors import DataError
from lambdastack.events import is_key_id
from lambdastack.keys import KeyLayout
from lambdastack.speedstore.base import Write
from lambdastack.speedview import FRESH_FIELD, RECENT_FIELD, decode_fresh, encode_recent
from speed.user_window import parse_window

SEEN_PREFIX = "seen:"  # + an item id: the field of a seen record


def seen_field(item_id: str) -> str:
    """The users-topic field of an interaction with `item_id` (item ids never hold ':')."""
    return SEEN_PREFIX + item_id


def _seen_write(user_id: str, field: str, payload: object, layout: KeyLayout) -> Write:
    item = field.removeprefix(SEEN_PREFIX)
    if not is_key_id(item):
        raise ValueError(f"field {field[:80]!r} names no item id the event contract allows")
    if payload is None:
        return Write("zrem", layout.seen(user_id), item)
    if not isinstance(payload, str | int) or not str(payload).isdigit():
        raise ValueError(f"a {SEEN_PREFIX!r} payload must be an event time in epoch ms, not {payload!r}")
    return Write("zadd", layout.seen(user_id), item, float(int(payload)))


def user_write(key: bytes, value: bytes | None, layout: KeyLayout, recent_n: int) -> Write:
    """The write of one users-topic record; raises DataError naming what is wrong with it."""
    try:
        k = orjson.loads(key)
        user_id, field = str(k["user_id"]), str(k["field"])
        if not is_key_id(user_id):  # ids are parts of Redis keys: "u:seen" would name u's seen set
            raise ValueError(f"user_id {user_id[:80]!r} is not an id the event contract allows")
        payload = None if value is None else orjson.loads(value)["payload"]
        if field.startswith(SEEN_PREFIX):
            return _seen_write(user_id, field, payload, layout)
        if field not in (RECENT_FIELD, FRESH_FIELD):
            raise ValueError(
                f"field must be {RECENT_FIELD!r}, {FRESH_FIELD!r} or {SEEN_PREFIX!r} + an item, not {field!r}"
            )
        user_key = layout.user(user_id)
        if payload is None:
            return Write("hdel", user_key, field)
        if field == RECENT_FIELD:
            recent = parse_window(payload)[-recent_n:]
            return Write("hset", user_key, field, encode_recent(recent))
        decode_fresh(payload)  # what readers could not decode is not written
        return Write("hset", user_key, field, str(payload))
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"users topic record with key {key!r}: {e}") from None


def report_skip(reason: str) -> None:
    print(f"[loader] skipping a record: {reason}", file=sys.stderr)


def user_writes(
    records: Iterable[tuple[bytes, bytes | None]],
    layout: KeyLayout,
    recent_n: int,
    seen_max: int,
    on_skip: Callable[[str], None] = report_skip,
) -> list[Write]:
    """The writes of a batch of (key, value) users-topic records, in order, then a trim of each
    seen set written to its newest `seen_max` items; a malformed record is skipped and given to
    `on_skip` with its reason (it would fail again at the same offset after every restart)."""
    out = []
    for key, value in records:
        try:
            out.append(user_write(key, value, layout, recent_n))
        except DataError as e:
            on_skip(str(e))
    seen = dict.fromkeys(w.key for w in out if w.op == "zadd")
    return out + [Write("ztrim", key, value=seen_max) for key in seen]
