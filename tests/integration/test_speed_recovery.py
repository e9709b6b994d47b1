"""Kill-and-recover on a standalone Flink cluster: the speed job runs on a JobManager and a
TaskManager started from pyflink's scripts; the TaskManager (with its Python UDF workers) is
SIGKILLed mid-stream after a checkpoint, a new one takes over, and Redis ends up holding exactly
the counts computed from the input: nothing lost, nothing counted twice. Then three TaskManager
kills at random moments under load and the JobManager's: `speed run` exits non-zero, and a run
resumed from the last job's newest checkpoint makes counts, `recent` and `fresh` exact again (a
user's fresh list after the resume is scored over the likes they sent before the kills too);
every poison record sent meanwhile is a dead letter, at most once per run of the job."""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator

import psutil
import pytest
import redis as redis_client

from lambdastack.events import Event
from lambdastack.keys import KeyLayout
from lambdastack.producer import EventProducer
from lambdastack.published import PublishedVersion
from lambdastack.settings import Settings
from lambdastack.speedview import FreshCandidates, Interaction, decode_fresh, decode_recent
from lambdastack.versions import VersionLayout
from speed import scoring_view
from speed.scoring import score
from tests.conftest import Isolated
from tests.integration import speed_versions
from tests.integration.helpers import consume_all, eventually, free_ports, invalid_at
from tests.integration.speedcheck import (
    diff,
    expected_counts,
    make_events,
    redis_counts,
    send,
    speed_isolated,
    start_speed,
    wait_exact,
)
from tools.stack import flink, kafka
from tools.stack.process import ManagedProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def on_cluster(services, base_env, tmp_path) -> Iterator[Isolated]:
    """Isolated settings plus a running standalone cluster on free ports (stopped afterwards)."""
    rpc, rest = free_ports(2)
    iso = speed_isolated(
        base_env,
        tmp_path,
        LAMBDASTACK_SPEED__CLUSTER_RPC_PORT=str(rpc),
        LAMBDASTACK_SPEED__CLUSTER_REST_PORT=str(rest),
        LAMBDASTACK_SPEED__CLUSTER_SLOTS="1",
        LAMBDASTACK_SPEED__CHECKPOINT_INTERVAL_MS="1000",
        LAMBDASTACK_SPEED__HEARTBEAT_TIMEOUT_MS="6000",
    )
    state = tmp_path / "flink"
    flink.start_cluster(iso.settings, state, timeout_s=120)
    try:
        yield iso
    finally:
        flink.stop_cluster(state)


def _checkpoints(iso: Isolated, job_id: str) -> dict[str, int]:
    s = iso.settings.speed
    doc = flink.rest_get(s.cluster_host, s.cluster_rest_port, f"/jobs/{job_id}/checkpoints") or {}
    return dict(doc.get("counts", {}))


def _checkpoint_after(iso: Isolated, job_id: str) -> None:
    done = _checkpoints(iso, job_id).get("completed", 0)
    eventually(lambda: _checkpoints(iso, job_id).get("completed", 0) > done, 60, "a new checkpoint")


def test_a_killed_taskmanager_is_replaced_and_redis_stays_exact(on_cluster: Isolated, tmp_path):
    iso, s = on_cluster, on_cluster.settings
    state = tmp_path / "flink"
    kafka.create_topics(s)
    proc, job_id = start_speed(iso, "speed-cluster", "--cluster", f"127.0.0.1:{s.speed.cluster_rest_port}")
    procs: list[ManagedProcess] = [proc]
    try:
        before, during, after = make_events(400, 1), make_events(800, 2), make_events(200, 3)
        send(s, before)
        wait_exact(s, expected_counts(before, 60), 120, proc)
        _checkpoint_after(iso, job_id)

        # mid-stream: the TaskManager dies while events keep coming
        producer = threading.Thread(target=send, args=(s, during, 200.0))
        producer.start()
        time.sleep(1.5)
        tm = psutil.Process(flink.taskmanager_process(state, 0).pid())
        workers = [p for p in tm.children(recursive=True) if "beam_boot" in " ".join(p.cmdline())]
        assert workers, "the TaskManager runs no Python UDF worker"
        killed = flink.kill_taskmanager(state, 0)
        assert {p.pid for p in workers} <= set(killed)
        assert not [p for p in workers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE], (
            "orphaned UDF workers"
        )
        flink.start_taskmanager(s, state, 1, timeout_s=120)
        producer.join()
        send(s, after)

        wait_exact(s, expected_counts(before + during + after, 60), 180, proc)
        counts = _checkpoints(iso, job_id)
        assert counts.get("restored", 0) >= 1, f"the job did not restore from a checkpoint: {counts}"
        assert proc.running(), proc.log_tail(30)
        # still exact a moment later (no late duplicates from the replay)
        time.sleep(3)
        assert redis_counts(s, {e.item_id for e in before}) == dict(
            expected_counts(before + during + after, 60)
        )
    finally:
        for p in procs:
            p.stop(timeout_s=20)


def _recent_expected(s: Settings, events: list[Event]) -> dict[str, list[Interaction]]:
    """Each user's `recent` computed from the input: their newest user_recent_n in the order their
    partition (keyed by user) holds them, oldest first."""
    per_user: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        per_user[e.user_id].append(e)
    return {
        user: [
            Interaction(e.item_id, e.type, e.value, e.event_time_ms) for e in evs[-s.speed.user_recent_n :]
        ]
        for user, evs in per_user.items()
    }


# a few shapes of bad input (tests/integration/test_speed.py sends twenty)
POISON = (b"[" * 5000, b"{}", b"not json", b'{"event_id": 1}', b"\xff\xfe\x00")


def _send_with_poison(s: Settings, events: list[Event], rate: float) -> None:
    """`events` at `rate` per second, then every POISON shape."""
    send(s, events, rate)
    with EventProducer(s) as producer:
        for bad in POISON:
            producer.send_raw(b"poison", bad)


def _dead_letters_bounded(s: Settings, valid: int, restarts: int) -> None:
    """Every poison record is a dead letter, and at most once per run of the job (the dead-letter
    sink is at-least-once: a restore from a checkpoint sends again what followed it)."""
    poison_at = invalid_at(consume_all(s, s.topics.events, valid + 3 * len(POISON)))
    assert len(poison_at) == 3 * len(POISON)
    dead = [json.loads(m.value) for m in consume_all(s, s.topics.dead_letter, len(poison_at))]
    copies: dict[tuple[int, int], int] = defaultdict(int)
    for d in dead:
        copies[(d["partition"], d["offset"])] += 1
    assert set(copies) == set(poison_at), "every poison record a dead letter, and nothing else"
    assert max(copies.values()) <= 1 + restarts, copies


# a user the version knows, with items of their own (make_events sends u0..u19 and i0..i7): their
# window holds only the likes the test sends them, so `fresh` can be computed from those alone
KNOWN, OWN_ITEMS = "known", [f"own{k}" for k in range(12)]


def _publish_scoring_version(s: Settings) -> scoring_view.ScoringView:
    """A version with a model and neighbours among the user's own items; its scoring view."""
    views = s.path(s.data.views_dir)
    catalogue = {**{f"i{k}": 10 for k in range(8)}, **{i: 5 for i in OWN_ITEMS}}
    # each item's neighbours: the three before it and the three after it (so the likes before the
    # kills are candidates after it unless the window still holds them)
    n = len(OWN_ITEMS)
    ring = {i: [OWN_ITEMS[(k + j) % n] for j in (1, -1, 2, -2, 3, -3)] for k, i in enumerate(OWN_ITEMS)}
    now = int(time.time() * 1000)
    vid = speed_versions.publish(views, now, catalogue, neighbours=ring, model=speed_versions.ranker_model())
    return scoring_view.load(PublishedVersion(VersionLayout(views), vid))


def _like(s: Settings, item: str, liked: list[Event]) -> None:
    liked.append(Event(f"e{uuid.uuid4().hex}", KNOWN, item, "like", 1.0, int(time.time() * 1000)))
    send(s, liked[-1:])


def _fresh_expected(s: Settings, view: scoring_view.ScoringView, liked: list[Event]) -> FreshCandidates:
    window = [Interaction(e.item_id, e.type, e.value, e.event_time_ms, e.event_id) for e in liked]
    sp = s.speed
    fresh = score(view, KNOWN, window, sp.fresh_n, sp.fresh_seeds, sp.fresh_neighbours_n)
    assert fresh is not None and fresh.items, "the scoring function proposes nothing"
    return fresh


def _fresh_in_redis(s: Settings) -> FreshCandidates | None:
    r = redis_client.Redis(host=s.redis.host, port=s.redis.port)
    return decode_fresh(r.hget(KeyLayout(s.redis.key_prefix).user(KNOWN), "fresh"))


def _recent_in_redis(s: Settings, users: set[str]) -> dict[str, list[Interaction]]:
    r = redis_client.Redis(host=s.redis.host, port=s.redis.port)
    keys = KeyLayout(s.redis.key_prefix)
    return {u: decode_recent(r.hget(keys.user(u), "recent")) for u in users}


@pytest.mark.chaos
def test_three_taskmanager_kills_then_the_jobmanagers_leave_counts_recent_and_fresh_exact(
    on_cluster: Isolated, tmp_path
):
    iso, s = on_cluster, on_cluster.settings
    state, rest = tmp_path / "flink", f"127.0.0.1:{on_cluster.settings.speed.cluster_rest_port}"
    kafka.create_topics(s)
    view = _publish_scoring_version(s)
    proc, job_id = start_speed(iso, "speed-kills", "--cluster", rest)
    resumed = None
    rng, sent, liked = random.Random(17), make_events(300, 11), list[Event]()
    try:
        send(s, sent)
        wait_exact(s, expected_counts(sent, 60), 120, proc)
        for k in range(3):  # each time at a random moment of a stream of events
            _like(s, OWN_ITEMS[k], liked)
            _checkpoint_after(iso, job_id)
            batch = make_events(600, 20 + k)
            producer = threading.Thread(target=_send_with_poison, args=(s, batch, 200.0))
            producer.start()
            time.sleep(rng.uniform(0.2, 2.8))
            flink.kill_taskmanager(state, k)
            flink.start_taskmanager(s, state, k + 1, timeout_s=120)
            producer.join()
            sent += batch
            wait_exact(s, expected_counts(sent, 60), 180, proc)
            assert proc.running(), proc.log_tail(30)
        assert _checkpoints(iso, job_id).get("restored", 0) >= 3

        _checkpoint_after(iso, job_id)
        pid = proc.pid()
        assert pid is not None
        flink.kill_jobmanager(state)
        eventually(lambda: not proc.running(), 30, "`speed run` ending after its JobManager died", 0.2)
        assert "the Flink cluster has not answered" in proc.log_tail(40), proc.log_tail(40)
        _, status = os.waitpid(pid, 0)  # its parent is this process
        assert os.waitstatus_to_exitcode(status) != 0
        flink.stop_cluster(state)  # the TaskManager left behind

        later = make_events(300, 40)
        send(s, later)  # while no job runs: waiting in Kafka
        sent += later
        flink.start_cluster(s, state, timeout_s=120)
        resumed, _ = start_speed(iso, "speed-resumed", "--cluster", rest, "--from-savepoint", "checkpoint")
        wait_exact(s, expected_counts(sent, 60), 180, resumed)
        expected = _recent_expected(s, sent)
        assert len(expected) >= 10
        try:
            eventually(
                lambda: _recent_in_redis(s, set(expected)) == expected, 60, "every user's recent exact"
            )
        except AssertionError as e:
            got = _recent_in_redis(s, set(expected))
            wrong = {u: (got[u], want) for u, want in expected.items() if got[u] != want}
            raise AssertionError(
                f"{e}\n{len(wrong)} users differ, e.g. (got, expected): {next(iter(wrong.items()))}"
            ) from None
        for item in OWN_ITEMS[3:6]:  # liked after the resume: scored over all six
            _like(s, item, liked)
        fresh = _fresh_expected(s, view, liked)
        eventually(lambda: _fresh_in_redis(s) == fresh, 60, "the user's fresh list exact after the resume")
        assert {i for i, _ in fresh.items}.isdisjoint(e.item_id for e in liked)
        wait_exact(s, expected_counts(sent + liked, 60), 60, resumed)
        time.sleep(3)  # still exact a moment later (no late duplicates from the replay)
        assert not diff(s, expected_counts(sent + liked, 60))
        _dead_letters_bounded(s, len(sent) + len(liked), restarts=4)
    finally:
        for p in (proc, resumed):
            if p is not None:
                p.stop(timeout_s=20)
