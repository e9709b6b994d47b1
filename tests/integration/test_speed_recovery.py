"""Kill-and-recover on a standalone Flink cluster: the speed job runs on a JobManager and a
TaskManager started from pyflink's scripts; the TaskManager (with its Python UDF workers) is
SIGKILLed mid-stream after a checkpoint, a new one takes over, and Redis ends up holding exactly
the counts computed from the input: nothing lost, nothing counted twice."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psutil
import pytest

from tests.conftest import Isolated
from tests.integration.helpers import eventually, free_ports
from tests.integration.speedcheck import (
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
        done = _checkpoints(iso, job_id).get("completed", 0)
        eventually(
            lambda: _checkpoints(iso, job_id).get("completed", 0) > done,
            60,
            "a checkpoint after the first events",
        )

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
