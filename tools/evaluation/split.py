"""The temporal split of the replay: history before a bucket-aligned as-of, the rest replayed.

The batch layer's as-of is floored to `batch.bucket_s` and holds the events strictly before it.
So the cut is the event time of the interaction at position floor(fraction * n) of the
time-ordered list, floored to a bucket start: history is every event strictly before that
instant, the test stream every event at or after it (its share can be a little below
`fraction` when the cut bucket holds several events).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pyarrow as pa

from lambdastack.errors import DataError
from lambdastack.events import Event
from lambdastack.keys import bucket_start

KNOWN, NEW = "known", "new"  # user segments: history before the cut, or first seen after it


@dataclass(frozen=True)
class Split:
    as_of_ms: int
    history: tuple[Event, ...]
    test: tuple[Event, ...]

    @property
    def history_share(self) -> float:
        total = len(self.history) + len(self.test)
        return len(self.history) / total if total else 0.0


def events_from_table(table: pa.Table) -> list[Event]:
    """Events of an events table (lambdastack.tables layout), in table order."""
    d = table.select(["event_id", "user_id", "item_id", "type", "value", "event_time"]).to_pydict()
    times = table.column("event_time").cast(pa.int64()).to_pylist()
    return [
        Event(e, u, i, t, float(v), int(ms))
        for e, u, i, t, v, ms in zip(
            d["event_id"], d["user_id"], d["item_id"], d["type"], d["value"], times, strict=True
        )
    ]


def time_ordered(events: Iterable[Event]) -> list[Event]:
    """Events by event time; equal times keep their input order (a stable sort)."""
    return sorted(events, key=lambda e: e.event_time_ms)


def split_events(events: Sequence[Event], fraction: float, bucket_s: int) -> Split:
    """History = events before the bucket-aligned cut at `fraction`; test = the rest, in time order."""
    if not 0.0 < fraction < 1.0:
        raise DataError(f"split must be between 0 and 1 (exclusive), not {fraction}")
    ordered = time_ordered(events)
    if len(ordered) < 2:
        raise DataError(f"the dataset holds {len(ordered)} events; a split needs at least 2")
    at = min(int(fraction * len(ordered)), len(ordered) - 1)
    as_of = bucket_start(ordered[at].event_time_ms, bucket_s)
    history = tuple(e for e in ordered if e.event_time_ms < as_of)
    test = tuple(e for e in ordered if e.event_time_ms >= as_of)
    if not history:
        raise DataError(
            f"split {fraction}: no event lies before the aligned as-of {as_of} ms "
            f"(batch.bucket_s = {bucket_s}); use a larger split"
        )
    return Split(as_of, history, test)


def segment(user_id: str, known_users: frozenset[str] | set[str]) -> str:
    """`known` when the user has history before the cut, else `new`."""
    return KNOWN if user_id in known_users else NEW
