"""The speed slice on real Kafka, Flink (local mini-cluster) and Redis, one job for the module
(tests on keys of their own: user and item ids with the test's prefix, the topics read from the
offsets a test found): exact absolute counts per item, bucket and type, an event sent twice counted
once, invalid input to the dead-letter topic with its source offset; and poison input never stops
anything (#13): poison records interleaved with valid events. The job may not restart even once
(fixed-delay, 0 attempts: a single failure would end it and `speed run` with it), Redis counts are
exact, every poison record is in the dead-letter topic once with its source offset, the users
pipeline's seen sets hold every valid interaction, and the archive holds exactly the valid events
the module sent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import redis as redis_client

from lambdastack.keys import KeyLayout
from lambdastack.master import read
from lambdastack.producer import EventProducer
from tests.conftest import Isolated, make_isolated
from tests.integration.conftest import start_speed_job
from tests.integration.helpers import consume_all, end_offsets, eventually, invalid_at, seen_set
from tests.integration.speedcheck import expected_counts, make_events, wait_exact
from tests.unit.test_events import GOOD
from tools.stack.process import ManagedProcess

pytestmark = pytest.mark.integration
BAD = [
    b"not json",
    b'{"event_id": "x"}',
    b'{"event_id":"e","user_id":"u","item_id":"i","type":"poke","event_time":"2026-01-01T00:00:00Z"}',
]


@dataclass
class Job:
    iso: Isolated
    proc: ManagedProcess
    valid: set[str] = field(default_factory=set)  # the ids of every valid event the module sent

    def offsets(self) -> tuple[dict[int, int], dict[int, int]]:
        """Where the events and the dead-letter topics stand before a test sends anything."""
        t = self.iso.settings.topics
        return end_offsets(self.iso.settings, t.events), end_offsets(self.iso.settings, t.dead_letter)


@pytest.fixture(scope="module")
def job(services, base_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Job]:
    iso = make_isolated(
        base_env,
        tmp_path_factory.mktemp("speed"),
        LAMBDASTACK_BATCH__BUCKET_S="60",
        LAMBDASTACK_SPEED__RESTART_STRATEGY="fixed-delay",
        LAMBDASTACK_SPEED__RESTART_ATTEMPTS="0",
        LAMBDASTACK_SPEED__ARCHIVE_ROLL_ROWS="200",
        LAMBDASTACK_SPEED__ARCHIVE_ROLL_S="0.5",
        LAMBDASTACK_SPEED__METRICS_PORT="0",
    )
    proc = start_speed_job(iso)
    yield Job(iso, proc)
    proc.stop(timeout_s=20)


def test_counts_in_redis_equal_the_input_and_bad_records_are_dead_lettered(job: Job):
    iso = job.iso
    since, dead_since = job.offsets()
    events = make_events(400, seed=5, items=8, ids="c")
    again = events[::4]  # sent twice (a client retrying a batch Kafka took): counted once
    job.valid.update(e.event_id for e in events)
    with EventProducer(iso.settings) as producer:
        for n, e in enumerate(events):
            producer.send(e)
            if n % 150 == 0:
                producer.send_raw(b"u-bad", BAD[(n // 150) % len(BAD)])
        for e in again:
            producer.send(e)
    n_bad = len(range(0, 400, 150))

    expected = expected_counts(events, 60)
    wait_exact(iso.settings, expected, 90, job.proc)
    layout = KeyLayout(iso.settings.redis.key_prefix)
    r = redis_client.Redis(port=iso.settings.redis.port)
    for (item, bucket, etype), n in expected.items():
        if etype == "*":
            assert r.zscore(layout.bucket(bucket), item) == n
    assert 0 < r.ttl(layout.item(events[0].item_id)) <= iso.settings.redis.signal_ttl_s

    topics = iso.settings.topics
    dead = [
        json.loads(m.value) for m in consume_all(iso.settings, topics.dead_letter, n_bad, since=dead_since)
    ]
    assert len(dead) == n_bad
    for d in dead:
        assert d["source"] == f"kafka:{topics.events}"
        assert d["reason"] and isinstance(d["partition"], int) and isinstance(d["offset"], int)
    assert any("type: must be one of" in d["reason"] for d in dead)
    assert any("is not valid JSON" in d["reason"] for d in dead)
    # nothing lost: every input record is either counted or dead-lettered
    total = consume_all(iso.settings, topics.events, len(events) + len(again) + n_bad, since=since)
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


def test_poison_interleaved_with_valid_events_stops_nothing_and_loses_nothing(job: Job):
    s = job.iso.settings
    since, dead_since = job.offsets()
    poison = _poison()
    assert len(poison) >= 20
    events = make_events(1000, seed=13, items=12, ids="p")
    job.valid.update(e.event_id for e in events)
    every = len(events) // len(poison)
    with EventProducer(s) as producer:
        for n, e in enumerate(events):
            producer.send(e)
            if n % every == 0 and n // every < len(poison):
                producer.send_raw(b"poison", poison[n // every])

    wait_exact(s, expected_counts(events, 60), 120, job.proc)
    # the users pipeline read the same poison: each user's seen set holds every item of theirs
    r, keys = redis_client.Redis(port=s.redis.port), KeyLayout(s.redis.key_prefix)
    seen: dict[str, dict[str, int]] = {}
    for e in events:  # an item's score: the event time of its newest record, in the order sent
        seen.setdefault(e.user_id, {})[e.item_id] = e.event_time_ms

    eventually(lambda: {u: seen_set(r, keys.seen(u)) for u in seen} == seen, 60, "every user's seen set")
    master = s.path(s.data.master_dir)
    eventually(lambda: read(master).num_rows >= len(job.valid), 90, "the valid events archived", 0.5)

    source = consume_all(s, s.topics.events, len(events) + len(poison), since=since)
    assert len(source) == len(events) + len(poison)
    poison_at = set(invalid_at(source))
    assert len(poison_at) == len(poison)
    dead = [json.loads(m.value) for m in consume_all(s, s.topics.dead_letter, len(poison), since=dead_since)]
    assert sorted((d["partition"], d["offset"]) for d in dead) == sorted(poison_at), "once each"
    assert all(d["reason"] and d["source"] == f"kafka:{s.topics.events}" for d in dead)
    assert any("nested too deeply" in d["reason"] for d in dead)
    assert any("item_id: may hold only" in d["reason"] for d in dead)

    ids = read(master)["event_id"].to_pylist()
    assert sorted(ids) == sorted(job.valid), "the archive holds exactly the valid events sent to the job"
    assert job.proc.running(), f"speed run stopped:\n{job.proc.log_tail(40)}"
    log = job.proc.log_file.read_text()
    assert "ended by itself" not in log and "RESTARTING" not in log, job.proc.log_tail(40)
