"""Speed-layer faults on one stack of its own (#13): its own Redis, `speed run` and the API.

- Redis faults heal themselves: Redis SIGKILLed under load and restarted empty. The loader waits
  with backoff and does not exit, the speed view is rebuilt to the exact state within 60 s (the
  epoch key tells the loader to replay its compacted topics), and the API serves degraded
  meanwhile, never a 5xx.
- Nothing runs half-dead: `speed run` SIGKILLed (with its mini-cluster JVM) shows as dead within
  10 s in `/ready`, the API's metrics and `lambdastack stack status`.
- `lambdastack doctor` on the same stack: exit 0 while it is healthy, and non-zero with a sentence
  naming Redis while Redis is away, the speed job once it is killed, and a stale batch version."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from lambdastack.settings import load_settings
from lambdastack.versions import VersionLayout
from speed.loader import SignalLoader
from tests.conftest import SLOT, Isolated, make_isolated
from tests.integration.conftest import SharedVersion, start_api, start_speed_job
from tests.integration.helpers import OwnRedis, eventually, free_ports, run_cli
from tests.integration.speedcheck import expected_counts, make_events, redis_snapshot, send, wait_exact
from tools.stack.process import ManagedProcess

pytestmark = [pytest.mark.integration, pytest.mark.chaos]
PORT = 16379 + 10 * SLOT + 6  # this module's own Redis, which the test kills


class FeedPoller(threading.Thread):
    """Asks for a feed every 50 ms; keeps (monotonic time, status, degraded) of every answer."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.answers = url, []  # type: ignore[var-annotated]
        self.done = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.done.is_set():
                r = client.get(self.url)
                degraded = r.json().get("degraded") if r.status_code == 200 else None
                self.answers.append((time.monotonic(), r.status_code, degraded))
                self.done.wait(0.05)


def _metric(url: str, name: str) -> float:
    m = re.search(rf"^{name} (\S+)$", httpx.get(url).text, re.M)
    assert m, f"{name} not in {url}"
    return float(m.group(1))


def _renamed(snapshot: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    return {new + k.removeprefix(old): v for k, v in snapshot.items()}


@dataclass
class Stack:
    iso: Isolated
    redis: OwnRedis
    job: ManagedProcess
    api: ManagedProcess
    metrics_port: int
    user: str

    @property
    def base(self) -> str:
        s = self.iso.settings
        return f"http://{s.serving.host}:{s.serving.port}"


@pytest.fixture(scope="module")
def stack(
    services, base_env, tmp_path_factory: pytest.TempPathFactory, shared_version: SharedVersion
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("speed-faults")
    own = OwnRedis(tmp / "redis", PORT)
    own.start()
    metrics_port, flink_port = free_ports(2)
    iso = make_isolated(
        base_env,
        tmp,
        LAMBDASTACK_REDIS__PORT=str(PORT),
        LAMBDASTACK_BATCH__BUCKET_S="60",
        LAMBDASTACK_SPEED__ARCHIVE_ENABLED="false",
        LAMBDASTACK_SPEED__SAVEPOINT_ON_STOP="false",
        LAMBDASTACK_SPEED__METRICS_PORT=str(metrics_port),
        LAMBDASTACK_SPEED__FLINK_METRICS_PORT=str(flink_port),  # the doctor reads the job's restarts
        **shared_version.data_env(),
    )
    procs: list[ManagedProcess] = []
    try:
        procs.append(start_speed_job(iso))
        procs.append(start_api(iso))
        user = shared_version.events.column("user_id")[0].as_py()
        yield Stack(iso, own, procs[0], procs[1], metrics_port, user)
    finally:
        for p in procs:
            p.stop(timeout_s=20)
        own.stop()


def test_redis_killed_under_load_and_restarted_empty_is_rebuilt_exactly_while_the_api_degrades(
    stack: Stack,
):
    s, own, job = stack.iso.settings, stack.redis, stack.job
    poller = FeedPoller(f"{stack.base}/v1/users/{stack.user}/feed?k=5")
    poller.start()
    events = make_events(1500, seed=6, items=10)
    sender = threading.Thread(target=send, args=(s, events, 150.0))  # 10 s of load
    sender.start()
    time.sleep(3)
    own.kill()
    killed = time.monotonic()
    doctor = run_cli(["doctor"], stack.iso.env, timeout_s=30)
    time.sleep(max(0.0, 4 - (time.monotonic() - killed)))
    own.start()  # empty: no persistence
    restarted = time.monotonic()
    sender.join()
    wait_exact(s, expected_counts(events, 60), 60 - (time.monotonic() - restarted), job)
    healed_s = time.monotonic() - restarted
    eventually(lambda: "the speed view is rebuilt" in job.log_tail(200), 20, "the replay marked done")
    time.sleep(1)
    poller.done.set()
    poller.join(15)

    answers = poller.answers
    assert answers and all(status == 200 for _, status, _ in answers), {st for _, st, _ in answers}
    down = [d for t, _, d in answers if killed + 0.5 < t < restarted - 0.2]
    assert down and all(down), "the feed says it is degraded while Redis is away"
    assert answers[-1][2] is False, "the feed is whole again"
    log = job.log_tail(400)
    assert job.running(), f"speed run stopped:\n{log}"
    assert "retrying in" in log and "replaying the signals and users topics" in log, log
    metrics = f"http://127.0.0.1:{stack.metrics_port}/metrics"
    assert _metric(metrics, "lambdastack_loader_store_errors_total") >= 1
    assert _metric(metrics, "lambdastack_loader_replays_total") == 2  # the first start, the rebuild
    assert _metric(metrics, "lambdastack_loader_replaying") == 0
    assert _metric(metrics, "lambdastack_loader_consumer_restarts_total") == 0  # Kafka was fine
    assert doctor.returncode == 2, doctor.stdout + doctor.stderr
    assert re.search(rf"^FAIL Redis +down at 127.0.0.1:{PORT}: ", doctor.stdout, re.M), doctor.stdout
    said = " ".join(doctor.stdout.split())
    assert f"- Redis at 127.0.0.1:{PORT} does not answer: start it with `lambdastack stack up`" in said
    assert re.search(r"^ok +Kafka +up at ", doctor.stdout, re.M), doctor.stdout  # the rest is still seen
    print(f"counts exact {healed_s:.1f} s after Redis came back empty; doctor while Redis was away:")
    print(doctor.stdout)

    # the whole view, not only the counts: a fresh loader replaying the same topics under
    # another prefix writes the same keys and values
    prefix, ref = s.redis.key_prefix, f"{s.redis.key_prefix}ref"
    r = own.client()
    seen: list[dict[str, Any]] = []

    def settled() -> bool:
        seen.append(redis_snapshot(r, prefix))
        return len(seen) > 6 and seen[-1] == seen[-6]

    eventually(settled, 30, "the speed view settling", 0.5)
    replay = load_settings(
        environ={
            **stack.iso.env,
            "LAMBDASTACK_REDIS__KEY_PREFIX": ref,
            "LAMBDASTACK_SPEED__LOADER_GROUP": f"ref-{stack.iso.tag}",
        }
    )
    loader = SignalLoader(replay)
    thread = threading.Thread(target=loader.run, daemon=True)
    thread.start()
    try:
        want = _renamed(seen[-1], prefix, ref)
        eventually(lambda: redis_snapshot(r, ref) == want, 60, "the reference replay matching")
    finally:
        loader.stop()
        thread.join(10)
    assert any(":user:" in k for k in want) and any(":since:" in k for k in want)


def _healthy_doctor(env: dict[str, str], timeout_s: float) -> str:
    """The screen of the first `lambdastack doctor` that exits 0 (a check may settle meanwhile:
    the loader's offsets are committed asynchronously, Flink's at a checkpoint)."""
    deadline, screen = time.monotonic() + timeout_s, ""
    while time.monotonic() < deadline:
        done = run_cli(["doctor"], env, 30)
        screen = done.stdout + done.stderr
        if done.returncode == 0:
            return screen
        time.sleep(1)
    raise AssertionError(f"doctor never exited 0 within {timeout_s:.0f} s:\n{screen}")


def test_a_killed_speed_run_shows_as_dead_within_10_s_in_ready_metrics_and_stack_status(
    stack: Stack, shared_version: SharedVersion
):
    env = stack.iso.env
    healthy = eventually(lambda: httpx.get(f"{stack.base}/ready").json()["speed"]["ok"], 20, "speed healthy")
    assert healthy and "speed layer: healthy" in run_cli(["stack", "status"], env).stdout
    assert _metric(f"{stack.base}/metrics", "lambdastack_speed_ok") == 1
    screen = _healthy_doctor(env, 30)
    assert re.search(r"^ok +speed job +RUNNING, pid \d+, job \w+, restarts 0, flink ", screen, re.M), screen
    current = shared_version.versions[1]
    assert re.search(rf"^ok +model +{current} loaded by the API \(CURRENT {current}\)", screen, re.M), screen
    print(f"a healthy stack:\n{screen}")
    pid = stack.job.pid()
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)  # `speed run`, its mini-cluster JVM and Python workers at once
    killed = time.monotonic()
    speed = eventually(
        lambda: (b := httpx.get(f"{stack.base}/ready").json()["speed"]) and not b["ok"] and b,
        15,
        "speed dead",
    )
    seen_s = time.monotonic() - killed
    assert seen_s <= 10, seen_s
    assert "has not written its heartbeat" in speed["problem"] or "Flink job" in speed["problem"], speed
    assert _metric(f"{stack.base}/metrics", "lambdastack_speed_ok") == 0
    out = run_cli(["stack", "status"], env).stdout
    assert "speed layer: down: " in out or "speed layer: UNHEALTHY: " in out, out
    doctor = run_cli(["doctor"], env, 30)
    assert doctor.returncode == 2, doctor.stdout + doctor.stderr
    assert re.search(r"^FAIL speed job +not running", doctor.stdout, re.M), doctor.stdout
    assert "- The speed job is not running: start it with `lambdastack up`" in doctor.stdout
    print(f"doctor after the kill:\n{doctor.stdout}")
    print(f"a killed speed run shown dead after {seen_s:.1f} s: {speed['problem']}")


def test_doctor_names_a_current_version_older_than_twice_the_batch_schedule(
    stack: Stack, tmp_path, shared_version: SharedVersion
):
    views = shared_version.copy_views(tmp_path / "views")
    old, new = shared_version.versions
    env = {**stack.iso.env, "LAMBDASTACK_DATA__VIEWS_DIR": str(views)}
    fresh = run_cli(["doctor"], env, 30).stdout
    assert re.search(
        rf"^ok +batch +{new}, as of \d\.\d h ago \(schedule 0 2 \* \* \*: every 1\.0 d\)", fresh, re.M
    )
    VersionLayout(views).set_current(old)  # as of three days ago: the nightly schedule missed two runs
    doctor = run_cli(["doctor"], env, 30)
    assert doctor.returncode == 2, doctor.stdout
    assert re.search(rf"^FAIL batch +{old}, as of 3\.\d d ago", doctor.stdout, re.M), doctor.stdout
    said = " ".join(doctor.stdout.split())
    twice = rf"- Batch version {old} is 3\.\d d old, more than twice the schedule's 1\.0 d: run `lambdastack"
    assert re.search(twice, said), doctor.stdout
