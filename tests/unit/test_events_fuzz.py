"""The event validator is total: any bytes, any JSON, give an event or reasons, never an exception."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambdastack.events import decode, validate
from speed.parse import parse_record
from tests.unit.test_events import GOOD

pytestmark = pytest.mark.unit


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet=st.characters(codec=None, exclude_categories=())),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def _assert_total(result):
    event, errors = result
    assert (event is None) != (errors == [])
    for field, reason in errors:
        # every reason is printable UTF-8: a consumer can write it to a dead-letter record
        field.encode("utf-8")
        reason.encode("utf-8")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(payload):
    _assert_total(decode(payload))
    row = parse_record(payload, 0, 7)
    assert row[0] or (row[7] and row[-1] == 7)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_arbitrary_json_values_never_raise(value):
    _assert_total(validate(value))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(GOOD)) | st.text(max_size=5), json_values, max_size=9))
def test_event_shaped_objects_with_wrong_types_never_raise(patch):
    _assert_total(validate({**GOOD, **patch}, now_ms=1_800_000_000_000))


@pytest.mark.parametrize(
    "payload",
    [
        b"[" * 5000,
        b"{" * 100_000,
        ("[" * 200_000 + "]" * 200_000).encode(),
        json.dumps({**GOOD, "item_id": "x" * 1_000_000}).encode(),
        b'{"value": NaN}',
        json.dumps({**GOOD, "value": float("inf")}).encode(),
        json.dumps({**GOOD, "value": 10**400}).encode(),
        b"\xff\xfe\x00garbage",
        b'{"event_id": "\\ud800", "\\udc00": 1}',
        json.dumps({**GOOD, "event_time": "9999-12-31T23:59:59-23:59"}).encode(),
        json.dumps({**GOOD, "event_time": "0001-01-01T00:00:00+23:59"}).encode(),
        json.dumps({**GOOD, "type": ["view"] * 1000}).encode(),
    ],
    ids=lambda p: repr(p[:24]),
)
def test_poison_shapes_are_rejected_with_a_reason(payload):
    now = 1_800_000_000_000
    event, errors = decode(payload, now_ms=now)
    assert event is None and errors
    _assert_total((event, errors))
    ok, *_rest, offset = parse_record(payload, 3, 42, now_ms=now)
    assert not ok and offset == 42


@pytest.mark.parametrize("field", ["user_id", "item_id"])
@pytest.mark.parametrize("bad", ["foo:min", "a:b", "x\n", "{tag}", "é"])
def test_ids_that_enter_redis_keys_cannot_hold_the_separator(field, bad):
    event, errors = validate({**GOOD, field: bad})
    assert event is None and [f for f, _ in errors] == [field]


def test_event_ids_may_still_hold_a_colon():
    event, errors = validate({**GOOD, "event_id": "source:17"})
    assert errors == [] and event is not None
