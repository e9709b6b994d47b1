"""Users-topic records -> Redis writes (speed.user_writes) and the window strings they carry."""

import json

import pytest

from lambdastack.errors import DataError
from lambdastack.events import EVENT_TYPES
from lambdastack.features import is_positive
from lambdastack.keys import KeyLayout
from lambdastack.settings import load_settings
from lambdastack.speedstore.base import Write
from lambdastack.speedstore.memory import MemorySpeedStore
from lambdastack.speedview import FreshCandidates, Interaction, decode_recent, encode_fresh
from speed.user_window import parse_window
from speed.user_writes import seen_field, user_write, user_writes
from speed.users import never_positive_types

pytestmark = pytest.mark.unit
LAYOUT = KeyLayout("p")
SETTINGS = load_settings(environ={"LAMBDASTACK_REDIS__KEY_PREFIX": "p"})


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
    assert user_writes(records, LAYOUT, 5, 100) == [
        Write("hset", "p:user:u1", "fresh", raw),
        Write("hdel", "p:user:u2", "recent"),
    ]


def _seen(user: str, item: str, t: int | None) -> tuple[bytes, bytes | None]:
    field = seen_field(item)
    return _key(user, field), None if t is None else _value(user, field, str(t))


def test_seen_records_add_each_item_with_its_time_and_a_batch_trims_each_set_once():
    records = [
        _seen("u1", "i1", 3000),
        _seen("u1", "i2", 1000),
        _seen("u2", "i1", 5),
        _seen("u1", "i1", 4000),
    ]
    assert user_writes(records, LAYOUT, 5, seen_max=2) == [
        Write("zadd", "p:user:u1:seen", "i1", 3000.0),
        Write("zadd", "p:user:u1:seen", "i2", 1000.0),
        Write("zadd", "p:user:u2:seen", "i1", 5.0),
        Write("zadd", "p:user:u1:seen", "i1", 4000.0),
        Write("ztrim", "p:user:u1:seen", value=2),
        Write("ztrim", "p:user:u2:seen", value=2),
    ]
    assert user_write(*_seen("u1", "i1", None), LAYOUT, 5) == Write("zrem", "p:user:u1:seen", "i1")


def test_the_seen_set_is_the_newest_items_whatever_survives_of_the_records_and_in_any_batches():
    """The users sink and the loader keep the newest record of a key, and Kafka compaction too;
    the loader's batches differ between a run and a replay, and so does the interleaving of keys
    (of two partitions): the set ends the same, the newest `seen_max` items at their newest time."""
    records = [_seen("u1", f"i{n % 7}", 1000 + 10 * n + n % 3) for n in range(40)]  # in time order
    newest = {f"i{n % 7}": 1000.0 + 10 * n + n % 3 for n in range(40)}
    want = dict(sorted(newest.items(), key=lambda kv: (kv[1], kv[0]))[-3:])
    by_item = sorted(records, key=lambda r: r[0])  # another interleaving, the same order per key
    last_only = list({k: (k, v) for k, v in records}.values())  # what compaction leaves
    for order in (records, by_item, last_only):
        for batch in (1, 3, 40):
            store = MemorySpeedStore.from_settings(SETTINGS)
            for start in range(0, len(order), batch):
                store.apply(user_writes(order[start : start + batch], LAYOUT, 5, seen_max=3))
            assert store.zset("p:user:u1:seen") == want, (len(order), batch)


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (_key("u1", "interest"), _value("u1", "interest", "x"), "field must be 'recent', 'fresh' or 'seen:'"),
        (_key("u1", "seen:"), _value("u1", "seen:", "5"), "names no item"),
        (_key("u1", "seen:i1"), _value("u1", "seen:i1", "soon"), "must be an event time in epoch ms"),
        (b"not json", None, "users topic record"),
        (_key("u1", "fresh"), _value("u1", "fresh", "{}"), "view_version"),
        (_key("u1", "recent"), _value("u1", "recent", "i1|view"), "does not have 5 fields"),
    ],
)
def test_bad_records_are_rejected_with_the_reason(key, value, reason, capsys):
    with pytest.raises(DataError, match=reason):
        user_write(key, value, LAYOUT, 5)
    good = (_key("u1", "recent"), _value("u1", "recent", "i1|view|1.0|5|e"))
    assert [w.member for w in user_writes([(key, value), good], LAYOUT, 5, 100)] == ["recent"]
    assert reason in capsys.readouterr().err


def test_the_sql_prefilter_only_drops_types_that_are_never_positive():
    barred = never_positive_types()
    assert barred == ["skip"]
    values = [v / 4 for v in range(0, 2000)]
    for etype in EVENT_TYPES:
        if etype in barred:
            assert not any(is_positive(etype, v) for v in values)


def test_without_per_event_scoring_the_user_pipeline_writes_recent_and_seen_only():
    from speed.users import insert_users

    assert "score_fresh" in insert_users() and "'fresh'" in insert_users()
    off = insert_users(score_events=False)
    assert "score_fresh" not in off and "'fresh'" not in off and "'recent'" in off
    assert "CONCAT('seen:', item_id)" in off and "CONCAT('seen:', item_id)" in insert_users()


def test_the_users_sink_buffers_as_many_keys_as_conf_says():
    from lambdastack.settings import load_settings
    from speed.users import sink_ddl

    settings = load_settings(environ={"LAMBDASTACK_SPEED__USERS_FLUSH_ROWS": "123"})
    assert "'sink.buffer-flush.max-rows' = '123'" in sink_ddl(settings)
    assert "'sink.buffer-flush.max-rows' = '2000'" in sink_ddl(load_settings(environ={}))
