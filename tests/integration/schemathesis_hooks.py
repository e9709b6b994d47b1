"""Loaded by schemathesis (SCHEMATHESIS_HOOKS) in test_serving_live: the one rule of the API's
contract that its OpenAPI document can only describe. An event's `event_time` is an RFC 3339
`date-time` that is not before 1970 and at most 24 h after the server's clock; JSON Schema has
no "now", so the document says it in the field's description and the API answers 422 otherwise.
Here, the `date-time` values schemathesis generates as valid data are such times (any zone
offset, with or without a fraction); invalid ones (not date-times) are generated as before."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import schemathesis
from hypothesis import strategies as st

DAY_MS = 24 * 3600 * 1000


def _rfc3339(ms: int, offset_min: int, digits: int, zulu: str) -> str:
    zone = timezone(timedelta(minutes=offset_min))
    local = datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(zone)
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{local.microsecond:06d}"[:digits]
    if offset_min == 0 and zulu:
        return text + zulu
    sign = "-" if offset_min < 0 else "+"
    return text + f"{sign}{abs(offset_min) // 60:02d}:{abs(offset_min) % 60:02d}"


# from a day after 1970 began (any offset stays after it) to now (generation runs for minutes,
# well inside the 24 h the API allows ahead of its clock)
event_times = st.builds(
    _rfc3339,
    st.integers(DAY_MS, int(time.time() * 1000)),
    st.integers(-(23 * 60 + 59), 23 * 60 + 59),
    st.integers(0, 6),
    st.sampled_from(["Z", "z", ""]),
)
schemathesis.openapi.format("date-time", event_times)
