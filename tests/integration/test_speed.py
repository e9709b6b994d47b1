"""The speed slice on real Kafka, Flink (local mini-cluster) and Redis: exact absolute counts per
item, bucket and type, an event sent twice counted once; invalid input to the dead-letter topic
with its source offset."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import redis as redis_client

from lambdastack.keys import KeyLayout, bucket_start
from lambdastack.producer import EventProducer
from tests.conftest import make_isolated
from tests.integration.conftest import start_speed_job
from tests.integration.helpers import consume_all, eventually
from tests.integration.speedcheck import make_events

pytestmark = pytest.mark.integration
BAD = [
    b"not json",
    b'{"event_id": "x"}',
    b'{"event_id":"e","user_id":"u","item_id":"i","type":"poke","event_time":"2026-01-01T00:00:00Z"}',
]


def _redis_state(
    r: redis_client.Redis, layout: KeyLayout, items: set[str]
) -> dict[tuple[str, int, str], int]:
    out = {}
    for item in items:
        for f, v in r.hgetall(layout.item(item)).items():
            bucket, etype = KeyLayout.parse_item_field(f.decode())
            out[(item, bucket, etype)] = int(v)
    return out


def test_counts_in_redis_equal_the_input_and_bad_records_are_dead_lettered(
    services, base_env, tmp_path, stopper
):
    iso = make_isolated(base_env, tmp_path, LAMBDASTACK_BATCH__BUCKET_S="60")
    stopper.append(start_speed_job(iso))
    events = make_events(400, seed=5, items=8)
    again = events[::4]  # sent twice (a client retrying a batch Kafka took): counted once
    with EventProducer(iso.settings) as producer:
        for n, e in enumerate(events):
            producer.send(e)
            if n % 150 == 0:
                producer.send_raw(b"u-bad", BAD[(n // 150) % len(BAD)])
        for e in again:
            producer.send(e)
    n_bad = len(range(0, 400, 150))

    expected = Counter((e.item_id, bucket_start(e.event_time_ms, 60), e.type) for e in events)
    expected.update(Counter((e.item_id, bucket_start(e.event_time_ms, 60), "*") for e in events))
    layout = KeyLayout(iso.settings.redis.key_prefix)
    r = redis_client.Redis(port=iso.settings.redis.port)
    items = {e.item_id for e in events}

    def diff():
        got = _redis_state(r, layout, items)
        return {
            k: (got.get(k), expected.get(k))
            for k in set(got) | set(expected)
            if got.get(k) != expected.get(k)
        }

    try:
        eventually(lambda: not diff(), 90, "Redis holding the exact counts")
    except AssertionError as e:
        raise AssertionError(
            f"{e}\ndiff (got, expected): {diff()}\nspeed log:\n{stopper[0].log_tail(60)}"
        ) from None
    for (item, bucket, etype), n in expected.items():
        if etype == "*":
            assert r.zscore(layout.bucket(bucket), item) == n
    assert 0 < r.ttl(layout.item(events[0].item_id)) <= iso.settings.redis.signal_ttl_s

    dead = [json.loads(m.value) for m in consume_all(iso.settings, iso.settings.topics.dead_letter, n_bad)]
    assert len(dead) == n_bad
    for d in dead:
        assert d["source"] == f"kafka:{iso.settings.topics.events}"
        assert d["reason"] and isinstance(d["partition"], int) and isinstance(d["offset"], int)
    assert any("type: must be one of" in d["reason"] for d in dead)
    assert any("is not valid JSON" in d["reason"] for d in dead)
    # nothing lost: every input record is either counted or dead-lettered
    total = consume_all(iso.settings, iso.settings.topics.events, len(events) + len(again) + n_bad)
    counted = sum(n for (_, _, t), n in expected.items() if t == "*")
    assert len(total) == counted + len(again) + len(dead)  # the copies are the only records not counted
    # each dead letter points at its source record
    by_offset = {(m.partition, m.offset): m.value for m in total}
    assert sorted(by_offset[(d["partition"], d["offset"])] for d in dead) == sorted(
        d["payload"].encode() for d in dead
    )
    assert sorted(d["payload"].encode() for d in dead) == sorted(
        BAD[(n // 150) % len(BAD)] for n in range(0, 400, 150)
    )
