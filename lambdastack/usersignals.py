"""The per-user values of the speed view (fields of the `{p}:user:{user_id}` hash), as JSON.

Written by the speed layer as absolute values (a replay writes the same bytes), read by the
serving layer. Every interaction carries its event time, so a reader merging with a batch
version as-of T uses only interactions at or after T (the batch profile already holds the rest).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import orjson

RECENT_FIELD = "recent"
FRESH_FIELD = "fresh"


@dataclass(frozen=True, slots=True)
class Interaction:
    item_id: str
    type: str
    value: float
    event_time_ms: int


@dataclass(frozen=True, slots=True)
class FreshCandidates:
    """Candidates scored by `model_version` right after the user's event at `event_time_ms`."""

    view_version: str
    model_version: str
    event_time_ms: int
    items: tuple[tuple[str, float], ...]


def encode_recent(interactions: list[Interaction]) -> str:
    """Oldest first."""
    return json.dumps([[i.item_id, i.type, i.value, i.event_time_ms] for i in interactions])


def decode_recent(raw: str | bytes | None) -> list[Interaction]:
    if not raw:
        return []
    return [Interaction(str(a), str(b), float(c), int(d)) for a, b, c, d in orjson.loads(raw)]


def encode_fresh(fresh: FreshCandidates) -> str:
    return json.dumps(
        {
            "view_version": fresh.view_version,
            "model_version": fresh.model_version,
            "event_time_ms": fresh.event_time_ms,
            "items": [[item, round(score, 6)] for item, score in fresh.items],
        }
    )


def decode_fresh(raw: str | bytes | None) -> FreshCandidates | None:
    if not raw:
        return None
    d = orjson.loads(raw)
    return FreshCandidates(
        str(d["view_version"]),
        str(d["model_version"]),
        int(d["event_time_ms"]),
        tuple((str(item), float(score)) for item, score in d["items"]),
    )
