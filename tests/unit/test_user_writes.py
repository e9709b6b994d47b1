"""Users-topic records -> Redis writes (speed.user_writes) and the window strings they carry."""

import json

import pytest

from lambdastack.errors import DataError
from lambdastack.events import EVENT_TYPES
from lambdastack.features import is_positive
from lambdastack.keys import KeyLayout
from lambdastack.speedstore.base import Write
from lambdastack.speedview import FreshCandidates, Interaction, decode_recent, encode_fresh
from speed.user_window import parse_window
from speed.user_writes import user_write, user_writes
from speed.users import never_positive_types

pytestmark = pytest.mark.unit
LAYOUT = KeyLayout("p")


def _key(user, field):
    return json.dumps({"user_id": user, "field": field}).encode()


def _value(user, field, payload):
    return json.dumps({"user_id": user, "field": field, "payload": payload}).encode()


WINDOW = "i1|view|1.0|1000|e1;i2|watch|1.0E7|2000|e2;i3|rating|4.5|1500|e3;i1|like|1.0|3000|e4"


def test_parse_window_keeps_arrival_order_and_java_number_forms():
    assert parse_window(WINDOW) == [
        Interaction("i1", "view", 1.0, 1000, "e1"),
        Interaction("i2", "watch", 1.0e7, 2000, "e2"),
        Interaction("i3", "rating", 4.5, 1500, "e3"),
        Interaction("i1", "like", 1.0, 3000, "e4"),
    ]
    assert parse_window("") == [] and parse_window(None) == []
    with pytest.raises(ValueError, match="does not have 5 fields"):
        parse_window("i1|view|1.0")


def test_recent_is_the_last_n_interactions_in_order_as_absolute_json():
    w = user_write(_key("u1", "recent"), _value("u1", "recent", WINDOW), LAYOUT, recent_n=3)
    assert (w.op, w.key, w.member) == ("hset", "p:user:u1", "recent")
    assert decode_recent(w.value) == [
        Interaction("i2", "watch", 1.0e7, 2000),
        Interaction("i3", "rating", 4.5, 1500),
        Interaction("i1", "like", 1.0, 3000),
    ]
    again = user_write(_key("u1", "recent"), _value("u1", "recent", WINDOW), LAYOUT, recent_n=3)
    assert again.value == w.value  # a replay writes the same bytes


def test_fresh_is_written_as_is_and_tombstones_delete_the_field():
    raw = encode_fresh(FreshCandidates("v000002", "v000002", 3000, (("i9", 0.5), ("i8", 0.25))))
    records = [(_key("u1", "fresh"), _value("u1", "fresh", raw)), (_key("u2", "recent"), None)]
    assert user_writes(records, LAYOUT, 5) == [
        Write("hset", "p:user:u1", "fresh", raw),
        Write("hdel", "p:user:u2", "recent"),
    ]


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (_key("u1", "interest"), _value("u1", "interest", "x"), "field must be 'recent' or 'fresh'"),
        (b"not json", None, "users topic record"),
        (_key("u1", "fresh"), _value("u1", "fresh", "{}"), "view_version"),
        (_key("u1", "recent"), _value("u1", "recent", "i1|view"), "does not have 5 fields"),
    ],
)
def test_bad_records_are_rejected_with_the_reason(key, value, reason, capsys):
    with pytest.raises(DataError, match=reason):
        user_write(key, value, LAYOUT, 5)
    good = (_key("u1", "recent"), _value("u1", "recent", "i1|view|1.0|5|e"))
    assert [w.member for w in user_writes([(key, value), good], LAYOUT, 5)] == ["recent"]
    assert reason in capsys.readouterr().err


def test_the_sql_prefilter_only_drops_types_that_are_never_positive():
    barred = never_positive_types()
    assert barred == ["skip"]
    values = [v / 4 for v in range(0, 2000)]
    for etype in EVENT_TYPES:
        if etype in barred:
            assert not any(is_positive(etype, v) for v in values)


def test_without_per_event_scoring_the_user_pipeline_writes_recent_only():
    from speed.users import insert_users

    assert "score_fresh" in insert_users() and "'fresh'" in insert_users()
    off = insert_users(score_events=False)
    assert "score_fresh" not in off and "'fresh'" not in off and "'recent'" in off


def test_the_users_sink_buffers_as_many_keys_as_conf_says():
    from lambdastack.settings import load_settings
    from speed.users import sink_ddl

    settings = load_settings(environ={"LAMBDASTACK_SPEED__USERS_FLUSH_ROWS": "123"})
    assert "'sink.buffer-flush.max-rows' = '123'" in sink_ddl(settings)
    assert "'sink.buffer-flush.max-rows' = '2000'" in sink_ddl(load_settings(environ={}))
