"""Per-record validation inside Flink: the shared event contract, as a row for SQL."""

from __future__ import annotations

from typing import Any

from lambdastack.events import decode, describe_errors

# (ok, event_id, user_id, item_id, type, value, event_time_ms, error)
ParsedRow = tuple[bool, str | None, str | None, str | None, str | None, float | None, int | None, str | None]
# ParsedRow + (raw, partition, offset): the record's payload only when it is invalid (the dead
# letter carries it), and where it was read
SourcedRow = tuple[Any, ...]


def parse_payload(payload: str | bytes | None, now_ms: int | None = None) -> ParsedRow:
    """Validate one wire record; the error names every bad field (the job never fails on input)."""
    if payload is None:
        return (False, None, None, None, None, None, None, "<record>: is empty")
    event, errors = decode(payload, now_ms=now_ms)
    if event is None:
        return (False, None, None, None, None, None, None, describe_errors(errors))
    return (
        True,
        event.event_id,
        event.user_id,
        event.item_id,
        event.type,
        event.value,
        event.event_time_ms,
        None,
    )


def parse_record(
    payload: str | bytes | None, partition: int | None, offset: int | None, now_ms: int | None = None
) -> SourcedRow:
    """`parse_payload` of a Kafka record, with its source position (and its payload if invalid)."""
    parsed = parse_payload(payload, now_ms)
    raw = (
        None if parsed[0] else (payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload)
    )
    return (*parsed, raw, partition, offset)


def row_fields() -> list[tuple[str, str]]:
    """Names and Flink SQL types of the parsed row, in order."""
    return [
        ("ok", "BOOLEAN"),
        ("event_id", "STRING"),
        ("user_id", "STRING"),
        ("item_id", "STRING"),
        ("type", "STRING"),
        ("value", "DOUBLE"),
        ("event_time_ms", "BIGINT"),
        ("error", "STRING"),
        ("raw", "STRING"),
        ("source_partition", "INT"),
        ("source_offset", "BIGINT"),
    ]


def as_sql_row(parsed: SourcedRow) -> Any:
    from pyflink.common import Row

    return Row(*parsed)
