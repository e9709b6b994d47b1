"""User-state records (from the users topic) to absolute Redis writes: HSET of whole JSON values.

A record's key is {"user_id", "field"}; its value {..., "payload": ...} is the field's whole new
value (a tombstone deletes the field). `recent` payloads are window strings (speed.user_window),
re-encoded here with lambdastack.speedview.encode_recent; `fresh` payloads are already encoded
FreshCandidates. No write depends on what Redis held, so a replay leaves the same bytes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

import orjson

from lambdastack.errors import DataError
from lambdastack.keys import KeyLayout
from lambdastack.speedstore.base import Write
from lambdastack.speedview import FRESH_FIELD, RECENT_FIELD, decode_fresh, encode_recent
from speed.user_window import parse_window


def user_write(key: bytes, value: bytes | None, layout: KeyLayout, recent_n: int) -> Write:
    """The write of one users-topic record; raises DataError naming what is wrong with it."""
    try:
        k = orjson.loads(key)
        user_key, field = layout.user(str(k["user_id"])), str(k["field"])
        payload = None if value is None else orjson.loads(value)["payload"]
        if field not in (RECENT_FIELD, FRESH_FIELD):
            raise ValueError(f"field must be {RECENT_FIELD!r} or {FRESH_FIELD!r}, not {field!r}")
        if payload is None:
            return Write("hdel", user_key, field)
        if field == RECENT_FIELD:
            recent = parse_window(payload)[-recent_n:]
            return Write("hset", user_key, field, encode_recent(recent))
        decode_fresh(payload)  # what readers could not decode is not written
        return Write("hset", user_key, field, str(payload))
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"users topic record with key {key!r}: {e}") from None


def user_writes(
    records: Iterable[tuple[bytes, bytes | None]], layout: KeyLayout, recent_n: int
) -> list[Write]:
    """The writes of a batch of (key, value) users-topic records, in order; a malformed record is
    reported on stderr with its reason and skipped (it would fail again on every restart)."""
    out = []
    for key, value in records:
        try:
            out.append(user_write(key, value, layout, recent_n))
        except DataError as e:
            print(f"[loader] skipping a record: {e}", file=sys.stderr)
    return out
