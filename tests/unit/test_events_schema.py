"""The event's JSON Schema (what the API's OpenAPI document shows for POST /v1/events) is what the
validator enforces: an event-shaped object passes one exactly when it passes the other (the clock
rules, which no schema can state, aside)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from lambdastack.events import MAX_INT_ID, json_schema, validate
from tests.unit.test_events import GOOD

pytestmark = pytest.mark.unit
NOW = 1_800_000_000_000  # 2027-01-15
SCHEMA = Draft202012Validator(json_schema())

IDS = ["e1", "0", "a" * 128, "a" * 129, "", "-x", "a:b", "a b", "é", 0, 7, -1, MAX_INT_ID, MAX_INT_ID + 1]
IDS += [0.0, 7.0, -1.0, 1e300, 1.5, True, None, [], {}]
# event times RFC 3339 takes (the clock rules aside) and ones it does not; the schema's format
# says which, so they are listed with the answer instead of checked by a format validator here
TIMES = {
    GOOD["event_time"]: True,
    "2026-11-28T13:00:00Z": True,
    "2026-11-28t13:00:00.123456789z": True,
    "2026-11-28T13:00:00+05:30": True,
    "2026-11-28T13:00:00-00:00": True,
    "2026-11-28T13:00Z": False,
    "2026-11-28 13:00:00Z": False,
    "20261128T130000Z": False,
    "2026-11-28T13:00:00": False,
    "2026-11-28": False,
    "yesterday": False,
}
VALUES = [None, 0, 0.5, 5, 5.01, 12.5, -0.1, 1e308, True, "1", []]
FIELDS = {
    "event_id": st.sampled_from(IDS),
    "user_id": st.sampled_from(IDS),
    "item_id": st.sampled_from(IDS),
    "type": st.sampled_from(["view", "click", "like", "share", "skip", "rating", "watch", "buy", 1, None]),
    "value": st.sampled_from(VALUES),
    "event_time": st.sampled_from([*TIMES, 1_700_000_000, None]),
    "schema_version": st.sampled_from([1, 1.0, 2, 0, True, None, "1"]),
    "extra": st.just(1),
}


@settings(max_examples=1500, deadline=None)
@given(st.fixed_dictionaries({}, optional=FIELDS), st.sets(st.sampled_from(sorted(GOOD)), max_size=2))
def test_the_schema_accepts_exactly_what_the_validator_accepts(patch, dropped):
    raw = {k: v for k, v in {**GOOD, **patch}.items() if k not in dropped}
    time = raw.get("event_time")
    documented = SCHEMA.is_valid(raw) and TIMES.get(time, False)  # type: ignore[arg-type]
    event, errors = validate(raw, now_ms=NOW)
    assert (event is not None) == documented, (raw, errors)


@pytest.mark.parametrize(
    "time", ["1969-12-31T23:59:59Z", "1970-01-01T00:30:00+01:00", "2027-01-17T00:00:00Z"]
)
def test_the_clock_rules_are_the_ones_the_schema_only_describes(time):
    raw = {**GOOD, "event_time": time}
    assert SCHEMA.is_valid(raw) and validate(raw, now_ms=NOW)[0] is None
    description = json_schema()["oneOf"][0]["properties"]["event_time"]["description"]
    assert "not before 1970, at most 24 h after the server's clock" in description
