"""Stop with a savepoint and resume from it: `speed stop --savepoint` takes one and stops `speed
run`; events arrive while it is stopped; `speed run --from-savepoint latest` resumes the counts and
the Kafka offsets from it. The resumed run starts from the *latest* offsets, so only the savepoint
can bring the events of the stopped time in: exact Redis counts prove the state and the offsets
both came back (without the state the counts would restart at 0, without the offsets they would
miss the stopped time or count the first events twice)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.helpers import run_cli
from tests.integration.speedcheck import (
    expected_counts,
    make_events,
    send,
    speed_isolated,
    start_speed,
    wait_exact,
)
from tools.stack import kafka

pytestmark = pytest.mark.integration


def test_stop_with_savepoint_then_resume_counts_every_event_once(services, base_env, tmp_path, stopper):
    iso = speed_isolated(base_env, tmp_path, LAMBDASTACK_SPEED__CHECKPOINT_INTERVAL_MS="2000")
    s = iso.settings
    kafka.create_topics(s)
    first, _ = start_speed(iso, "speed-1")
    stopper.append(first)
    before, stopped, after = make_events(300, 11), make_events(300, 12), make_events(100, 13)
    send(s, before)
    wait_exact(s, expected_counts(before, 60), 90, first)

    done = run_cli(["speed", "stop", "--savepoint"], iso.env, timeout_s=180)
    assert done.returncode == 0, done.stderr + first.log_tail(40)
    path = done.stdout.strip().removeprefix("stopped; savepoint ")
    assert path.startswith("file:") and Path(path.removeprefix("file:")).is_dir(), done.stdout
    assert not first.running()
    assert f"stopped with savepoint {path}" in first.log_tail(20)

    send(s, stopped)
    env = {**iso.env, "LAMBDASTACK_SPEED__STARTUP_MODE": "latest-offset"}
    second, _ = start_speed(iso, "speed-2", "--from-savepoint", "latest", env=env)
    stopper.append(second)
    send(s, after)
    wait_exact(s, expected_counts(before + stopped + after, 60), 120, second)
