"""Per-record validation inside Flink: the shared event contract, as a row for SQL."""

from __future__ import annotations

from typing import Any

from lambdastack.events import decode, describe_errors

# (ok, event_id, user_id, item_id, type, value, event_time_ms, error)
ParsedRow = tuple[bool, str | None, str | None, str | None, str | None, float | None, int | None, str | None]


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
    ]


def as_sql_row(parsed: ParsedRow) -> Any:
    from pyflink.common import Row

    return Row(*parsed)
