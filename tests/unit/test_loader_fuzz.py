"""Any record on the signals or users topic (both written by the speed job, but a topic accepts
what any producer sends) becomes writes or is skipped with its reason: the loader's routing never
raises, so one bad record cannot stop `speed run`, nor stop it again at the same offset after a
restart. Hypothesis draws arbitrary bytes, arbitrary JSON and record-shaped JSON of wrong types,
mixed with valid records whose writes must come out unchanged."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambdastack.keys import KeyLayout
from lambdastack.settings import Settings, load_settings
from lambdastack.speedstore.memory import MemorySpeedStore
from speed.signal_router import SignalRouter
from speed.user_writes import user_writes

pytestmark = pytest.mark.unit
NOW_S = 10_000.0
VALID_SIGNAL = (
    json.dumps({"kind": "min", "item_id": "i1", "minute_ms": 9_960_000}).encode(),
    json.dumps({"cnt": 2, "view": 2}).encode(),
)
VALID_USER = (json.dumps({"user_id": "u1", "field": "seen:i1"}).encode(), json.dumps({"payload": 5}).encode())

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
anything = st.one_of(json_values, st.sampled_from(["i1", "", "a:b", "x" * 300, -1, 10**30, 1e300, [], {}]))
signal_keys = st.fixed_dictionaries(
    {},
    optional={
        "kind": st.sampled_from(["min", "trend", "drift", None, 7, "other"]),
        "item_id": anything,
        "bucket_ms": anything,
        "minute_ms": anything,
        "window_end_ms": anything,
    },
)
signal_values = st.fixed_dictionaries(
    {}, optional={"cnt": anything, "view": anything, "like": anything, "items": anything, "bins": anything}
)
user_keys = st.fixed_dictionaries(
    {},
    optional={
        "user_id": anything,
        "field": st.sampled_from(["recent", "fresh", "seen:", "seen:i2", "x"]) | anything,
    },
)
user_values = st.fixed_dictionaries({}, optional={"payload": anything})


def _raw(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """A record part: arbitrary bytes, any JSON, or JSON of the record's shape with wrong types."""
    return st.one_of(
        st.binary(max_size=64),
        json_values.map(lambda v: json.dumps(v).encode()),
        strategy.map(lambda v: json.dumps(v).encode()),
    )


@pytest.fixture(scope="module")
def router_settings(tmp_path_factory) -> Settings:
    views = tmp_path_factory.mktemp("views")
    return load_settings(
        environ={"LAMBDASTACK_REDIS__KEY_PREFIX": "t", "LAMBDASTACK_DATA__VIEWS_DIR": str(views)}
    )


def _router(s: Settings) -> tuple[SignalRouter, MemorySpeedStore, list[str]]:
    store, skipped = MemorySpeedStore.from_settings(s), []
    router = SignalRouter(s, store, clock=lambda: NOW_S, on_skip=skipped.append)
    router.start()
    return router, store, skipped


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(st.tuples(_raw(signal_keys), st.none() | _raw(signal_values)), max_size=6))
def test_any_signal_record_is_routed_or_skipped_and_the_valid_ones_still_write(records, router_settings):
    router, store, skipped = _router(router_settings)
    writes = router.writes([VALID_SIGNAL, *records, VALID_SIGNAL])
    store.apply(writes)  # whatever came out is a write the store takes
    assert store.hash("t:item:i1:min").get("9960000:view") == b"2"
    assert len(skipped) <= len(records)


@settings(max_examples=200, deadline=None)
@given(records=st.lists(st.tuples(_raw(user_keys), st.none() | _raw(user_values)), max_size=6))
def test_any_users_record_is_written_or_skipped_and_the_valid_ones_still_write(records):
    writes = user_writes([VALID_USER, *records, VALID_USER], KeyLayout("t"), 5, 100)
    assert sum(w.key == "t:user:u1:seen" and w.op == "zadd" and w.value == 5.0 for w in writes) == 2


def test_a_signal_record_naming_an_id_the_event_contract_refuses_is_skipped(router_settings):
    router, _store, skipped = _router(router_settings)
    key = json.dumps({"kind": "min", "item_id": "i1:min", "minute_ms": 9_960_000}).encode()
    assert router.writes([(key, VALID_SIGNAL[1])]) == []  # it would write into i1's minute hash
    assert len(skipped) == 1 and "item_id 'i1:min' is not an id the event contract allows" in skipped[0]


def test_a_users_record_whose_ids_would_name_another_key_is_skipped():
    bad = [
        (
            json.dumps({"user_id": "u1:seen", "field": "recent"}).encode(),
            json.dumps({"payload": ""}).encode(),
        ),
        (json.dumps({"user_id": "u1", "field": "seen:a:b"}).encode(), json.dumps({"payload": 5}).encode()),
    ]
    skipped: list[str] = []
    assert user_writes(bad, KeyLayout("t"), 5, 100, skipped.append) == []
    assert "user_id 'u1:seen' is not an id" in skipped[0] and "names no item id" in skipped[1]
