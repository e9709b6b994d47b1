"""A user's last interactions as the Flink job aggregates them: one string per window.

Flink's OVER aggregation (speed/users.py) joins one entry per event with ENTRY_SEP, oldest first
(arrival order: a user's events share one partition, as the producer keys by user). An entry is
`item_id|type|value|event_time_ms|event_id`; ids and types never hold `|` or `;` (the event
contract allows `[A-Za-z0-9_.:-]` only), so no escaping is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

from lambdastack.usersignals import Interaction

ENTRY_SEP = ";"
FIELD_SEP = "|"


def entry_sql() -> str:
    """The SQL expression of one entry, over the columns of a valid event."""
    return (
        f"CONCAT_WS('{FIELD_SEP}', item_id, type, CAST(`value` AS STRING), "
        "CAST(event_time_ms AS STRING), event_id)"
    )


@dataclass(frozen=True, slots=True)
class Entry:
    """One interaction of a window, with the event id that orders equal event times."""

    item_id: str
    type: str
    value: float
    event_time_ms: int
    event_id: str

    def interaction(self) -> Interaction:
        return Interaction(self.item_id, self.type, self.value, self.event_time_ms)


def parse_window(raw: str | None) -> list[Entry]:
    """The entries of a window string, oldest first; raises ValueError naming a malformed entry."""
    if not raw:
        return []
    out = []
    for text in raw.split(ENTRY_SEP):
        parts = text.split(FIELD_SEP)
        if len(parts) != 5:
            raise ValueError(f"window entry {text!r} does not have 5 fields separated by {FIELD_SEP!r}")
        item, etype, value, t, event_id = parts
        out.append(Entry(item, etype, float(value), int(t), event_id))
    return out
