"""A user's last interactions as the Flink job aggregates them: one string per window.

Flink's OVER aggregation (speed/users.py) joins one entry per event with ENTRY_SEP, oldest first
(arrival order: a user's events share one partition, as the producer keys by user). An entry is
`item_id|type|value|event_time_ms|event_id`, an `Interaction` of the core with its event id; ids
and types never hold `|` or `;` (the event contract allows `[A-Za-z0-9_.:-]` only), so no
escaping is needed.
"""

from __future__ import annotations

from lambdastack.events import Event
from lambdastack.speedview import Interaction

ENTRY_SEP = ";"
FIELD_SEP = "|"


def entry_sql() -> str:
    """The SQL expression of one entry, over the columns of a valid event."""
    return (
        f"CONCAT_WS('{FIELD_SEP}', item_id, type, CAST(`value` AS STRING), "
        "CAST(event_time_ms AS STRING), event_id)"
    )


def entry(e: Event | Interaction) -> str:
    """The entry of an event, as `entry_sql` builds it in Flink (the evaluation builds windows so)."""
    return FIELD_SEP.join([e.item_id, e.type, str(float(e.value)), str(e.event_time_ms), e.event_id])


def parse_window(raw: str | None) -> list[Interaction]:
    """The entries of a window string, oldest first; raises ValueError naming a malformed entry."""
    if not raw:
        return []
    out = []
    for text in raw.split(ENTRY_SEP):
        parts = text.split(FIELD_SEP)
        if len(parts) != 5:
            raise ValueError(f"window entry {text!r} does not have 5 fields separated by {FIELD_SEP!r}")
        item, etype, value, t, event_id = parts
        out.append(Interaction(item, etype, float(value), int(t), event_id))
    return out
