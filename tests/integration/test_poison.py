"""Poison input never stops anything (#13): poison records interleaved with valid events on the
real Kafka, Flink and Redis. The job may not restart even once (fixed-delay, 0 attempts: a single
failure would end it and `speed run` with it), Redis counts are exact, every poison record is in
the dead-letter topic once with its source offset, the users pipeline's seen sets hold every valid
interaction, and the archive holds exactly the valid events."""

from __future__ import annotations

import json

import pytest
import redis as redis_client

from lambdastack.keys import KeyLayout
from lambdastack.master import read
from lambdastack.producer import EventProducer
from tests.conftest import make_isolated
from tests.integration.conftest import start_speed_job
from tests.integration.helpers import consume_all, eventually, invalid_at, seen_set
from tests.integration.speedcheck import expected_counts, make_events, wait_exact
from tests.unit.test_events import GOOD

pytestmark = pytest.mark.integration


def _poison() -> list[bytes]:
    good = dict(GOOD)
    shapes: list[object] = [
        {**good, "type": "poke"},
        {**good, "user_id": "u:min"},
        {**good, "item_id": "foo:min"},
        {**good, "item_id": "x" * 900_000},  # close to Kafka's 1 MB record limit
        {**good, "value": 10**400},
        {**good, "value": "NaN"},
        {**good, "event_time": "9999-12-31T23:59:59-23:59"},
        {**good, "event_time": 17},
        {**good, "schema_version": 2},
        {**good, "extra": {"deep": [[[[1]]]]}},
        {**good, "type": ["view"] * 1000},
        [good],
    ]
    raw = [json.dumps(s).encode() for s in shapes]
    return raw + [
        b"[" * 5000,  # valid bytes, too deeply nested for json.loads (RecursionError)
        b"{" * 100_000,
        b'{"value": NaN}',
        b'{"value": Infinity, "event_id": 1e999}',
        b"\xff\xfe\x00 not utf-8",
        b'{"event_id": "\\ud800", "\\udc00": 1}',  # lone surrogates
        b"",
        b"null",
        b"not json",
        b'"a string"',
    ]


def test_poison_interleaved_with_valid_events_stops_nothing_and_loses_nothing(
    services, base_env, tmp_path, stopper
):
    iso = make_isolated(
        base_env,
        tmp_path,
        LAMBDASTACK_BATCH__BUCKET_S="60",
        LAMBDASTACK_SPEED__RESTART_STRATEGY="fixed-delay",
        LAMBDASTACK_SPEED__RESTART_ATTEMPTS="0",
        LAMBDASTACK_SPEED__ARCHIVE_ROLL_ROWS="200",
        LAMBDASTACK_SPEED__ARCHIVE_ROLL_S="0.5",
        LAMBDASTACK_SPEED__METRICS_PORT="0",
    )
    s = iso.settings
    job = start_speed_job(iso)
    stopper.append(job)
    poison = _poison()
    assert len(poison) >= 20
    events = make_events(1000, seed=13, items=12)
    every = len(events) // len(poison)
    with EventProducer(s) as producer:
        for n, e in enumerate(events):
            producer.send(e)
            if n % every == 0 and n // every < len(poison):
                producer.send_raw(b"poison", poison[n // every])

    wait_exact(s, expected_counts(events, 60), 120, job)
    # the users pipeline read the same poison: each user's seen set holds every item of theirs
    r, keys = redis_client.Redis(port=s.redis.port), KeyLayout(s.redis.key_prefix)
    seen: dict[str, dict[str, int]] = {}
    for e in events:  # an item's score: the event time of its newest record, in the order sent
        seen.setdefault(e.user_id, {})[e.item_id] = e.event_time_ms

    eventually(lambda: {u: seen_set(r, keys.seen(u)) for u in seen} == seen, 60, "every user's seen set")
    master = s.path(s.data.master_dir)
    eventually(lambda: read(master).num_rows >= len(events), 90, "the valid events archived", 0.5)

    source = consume_all(s, s.topics.events, len(events) + len(poison))
    assert len(source) == len(events) + len(poison)
    poison_at = set(invalid_at(source))
    assert len(poison_at) == len(poison)
    dead = [json.loads(m.value) for m in consume_all(s, s.topics.dead_letter, len(poison))]
    assert sorted((d["partition"], d["offset"]) for d in dead) == sorted(poison_at), "once each"
    assert all(d["reason"] and d["source"] == f"kafka:{s.topics.events}" for d in dead)
    assert any("nested too deeply" in d["reason"] for d in dead)
    assert any("item_id: may hold only" in d["reason"] for d in dead)

    ids = read(master)["event_id"].to_pylist()
    assert sorted(ids) == sorted(e.event_id for e in events), "the archive holds exactly the valid events"
    assert job.running(), f"speed run stopped:\n{job.log_tail(40)}"
    log = job.log_file.read_text()
    assert "ended by itself" not in log and "RESTARTING" not in log, job.log_tail(40)
