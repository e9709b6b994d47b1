import json

import pytest

from lambdastack.errors import ValidationError
from lambdastack.events import Event, decode, format_time, parse, parse_time, validate

pytestmark = pytest.mark.unit

GOOD = {
    "event_id": "e1",
    "user_id": "u1",
    "item_id": "i1",
    "type": "watch",
    "value": 12.5,
    "event_time": "2026-11-28T13:00:00.123Z",
    "schema_version": 1,
}


def test_a_valid_event_round_trips_through_json():
    event = parse(GOOD)
    assert event == Event("e1", "u1", "i1", "watch", 12.5, parse_time("2026-11-28T13:00:00.123Z"))
    again, errors = decode(event.to_json())
    assert errors == [] and again == event
    assert json.loads(event.to_json())["event_time"] == "2026-11-28T13:00:00.123Z"


def test_value_defaults_to_one_and_offsets_are_normalised_to_utc():
    event = parse({**GOOD, "value": None, "type": "like", "event_time": "2026-11-28T14:00:00+01:00"})
    assert event.value == 1.0
    assert format_time(event.event_time_ms) == "2026-11-28T13:00:00.000Z"


def test_every_bad_field_is_reported_with_its_reason():
    _, errors = validate(
        {
            "event_id": "",
            "user_id": 3.5,
            "type": "poke",
            "value": "x",
            "event_time": "yesterday",
            "schema_version": 2,
            "colour": "red",
        }
    )
    fields = dict(errors)
    assert fields["colour"] == "is not a field of the event schema"
    assert fields["item_id"] == "is required"
    assert fields["event_id"] == "must not be empty"
    assert fields["user_id"] == "must be a string"
    assert "must be one of view, click" in fields["type"]
    assert fields["value"] == "must be a number"
    assert "not an RFC 3339 timestamp" in fields["event_time"]
    assert fields["schema_version"] == "must be 1, got 2"


@pytest.mark.parametrize(
    ("patch", "field", "reason"),
    [
        ({"type": "rating", "value": 7}, "value", "a rating must be between 0 and 5"),
        ({"value": -1}, "value", "must not be negative"),
        ({"value": float("nan")}, "value", "must be a finite number"),
        ({"event_time": "2026-11-28T13:00:00"}, "event_time", "has no time zone"),
        ({"user_id": "a b"}, "user_id", "may hold only"),
        ({"item_id": "x" * 200}, "item_id", "at most 128"),
        ({"value": True}, "value", "must be a number"),
    ],
)
def test_field_rules(patch, field, reason):
    event, errors = validate({**GOOD, **patch})
    assert event is None
    assert any(f == field and reason in r for f, r in errors), errors


def test_future_events_are_rejected_when_a_clock_is_given():
    now = parse_time("2026-11-28T00:00:00Z")
    _, errors = validate({**GOOD, "event_time": "2026-12-05T00:00:00Z"}, now_ms=now)
    assert errors == [("event_time", "is more than a day in the future")]


def test_not_json_and_not_an_object():
    assert decode(b"{nope")[1][0][0] == "<record>"
    assert decode(b"[1, 2]")[1] == [("<event>", "must be a JSON object")]


def test_parse_raises_naming_every_field():
    with pytest.raises(ValidationError) as info:
        parse({"event_id": "e"})
    assert {f for f, _ in info.value.errors} == {"user_id", "item_id", "type", "event_time"}
