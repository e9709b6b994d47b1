"""Arrow schemas of the master dataset and the item catalogue: items (with their undated tags) and
dated tags (a tag written at an instant; a batch version as of T uses only those before T)."""

from __future__ import annotations

import pyarrow as pa

EVENTS_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
        pa.field("event_time", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("schema_version", pa.int32(), nullable=False),
    ]
)

ITEMS_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("title", pa.string()),
        pa.field("genres", pa.list_(pa.string())),
        pa.field("tags", pa.list_(pa.string())),
    ]
)


TAGS_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("tag", pa.string(), nullable=False),
        pa.field("tagged_at", pa.timestamp("ms", tz="UTC"), nullable=False),
    ]
)


def events_table(columns: dict[str, object]) -> pa.Table:
    """Build an events table from column arrays (event_time as epoch ms)."""
    cols = dict(columns)
    cols["event_time"] = pa.array(cols["event_time"], pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
    if "schema_version" not in cols:
        cols["schema_version"] = pa.array([1] * len(cols["event_id"]), pa.int32())  # type: ignore[arg-type]
    return pa.table(
        {
            f.name: pa.array(cols[f.name], f.type) if not isinstance(cols[f.name], pa.Array) else cols[f.name]
            for f in EVENTS_SCHEMA
        },
        schema=EVENTS_SCHEMA,
    )
