"""The speed layer's signals on real Kafka, Flink and Redis, one job for the module (short
windows by config): exact minute counters and sliding-window sums, trending against a batch
baseline, drift alerts, and a replay of the signals topic rebuilding the same Redis state.
The tests run in file order; the replay comes last and stops the job."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import redis as redis_client

from lambdastack.events import Event
from lambdastack.keys import KeyLayout
from lambdastack.producer import EventProducer
from lambdastack.settings import Settings, load_settings
from lambdastack.speedview import MINUTE_MS, WINDOWS_MIN, minute_windows
from speed.loader import SignalLoader
from tests.conftest import Isolated, make_isolated
from tests.integration import speed_versions
from tests.integration.conftest import start_speed_job
from tests.integration.helpers import eventually
from tests.integration.speedcheck import redis_snapshot
from tools.stack.process import ManagedProcess

pytestmark = pytest.mark.integration
SHORT_WINDOWS = {
    "LAMBDASTACK_SPEED__TRENDING_WINDOW_S": "10",
    "LAMBDASTACK_SPEED__TRENDING_SLIDE_S": "5",
    "LAMBDASTACK_SPEED__TRENDING_MIN_USERS": "5",
    "LAMBDASTACK_SPEED__DRIFT_WINDOW_S": "4",
    "LAMBDASTACK_SPEED__DRIFT_SAMPLE_PER_MILLE": "1000",
    "LAMBDASTACK_SPEED__DRIFT_MIN_EVENTS": "60",
    "LAMBDASTACK_SPEED__WATERMARK_DELAY_MS": "500",
    "LAMBDASTACK_SPEED__SOURCE_IDLE_TIMEOUT_MS": "1000",
    "LAMBDASTACK_SPEED__BASELINE_CHECK_S": "0.5",
}
# 'steady' is engaged 36,000 times an hour in the batch: 100 users expected in a 10 s window.
# item_pop = log1p(batch events) of i0..i3 is 0, 2.4, 4.6, 6.9: one item per bin of the baseline.
ITEM_EVENTS = {"steady": 36_000 * 24, "i0": 0, "i1": 10, "i2": 100, "i3": 1000}
IN_DISTRIBUTION = ["i0", "i1", "i2", "i3"]
FEATURE_BASELINE = {"item_pop": {"edges": [1.0, 3.0, 5.0], "proportions": [0.25, 0.25, 0.25, 0.25]}}


@dataclass
class Job:
    iso: Isolated
    proc: ManagedProcess
    r: redis_client.Redis
    layout: KeyLayout

    @property
    def settings(self) -> Settings:
        return self.iso.settings


@pytest.fixture(scope="module")
def job(services, base_env, tmp_path_factory) -> Iterator[Job]:
    iso = make_isolated(base_env, tmp_path_factory.mktemp("signals"), **SHORT_WINDOWS)
    s = iso.settings
    speed_versions.publish(s.path(s.data.views_dir), now_ms(), ITEM_EVENTS, FEATURE_BASELINE)
    proc = start_speed_job(iso)
    try:
        yield Job(iso, proc, redis_client.Redis(port=s.redis.port), KeyLayout(s.redis.key_prefix))
    finally:
        proc.stop(timeout_s=20)


def now_ms() -> int:
    return int(time.time() * 1000)


def _e(user: str, item: str, etype: str, t: int) -> Event:
    return Event(f"e{uuid.uuid4().hex}", user, item, etype, 1.0, t)


def _send(settings: Settings, events: list[Event]) -> None:
    with EventProducer(settings) as producer:
        for e in events:
            producer.send(e)


class Ticker:
    """Events at now every 0.2 s from a background thread: they move the watermark forward."""

    def __init__(self, settings: Settings, make: Callable[[int], list[Event]]):
        self._settings, self._make = settings, make
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with EventProducer(self._settings) as p:
            while not self._stop.is_set():
                for e in self._make(now_ms()):
                    p.send(e)
                p.flush()
                time.sleep(0.2)

    def __enter__(self) -> Ticker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_minute_counters_are_exact_and_give_the_window_sums(job: Job):
    t0 = now_ms()
    # known event times over the last 12 minutes, out of order and mostly behind the watermark
    types = ("view", "like", "share")
    timed = [_e(f"u{n % 7}", "m", types[n % 3], t0 - (n * 13_777) % 720_000) for n in range(60)]
    _send(job.settings, timed)
    expected = Counter(f"{e.event_time_ms - e.event_time_ms % MINUTE_MS}:{e.type}" for e in timed)
    expected.update(Counter(f"{e.event_time_ms - e.event_time_ms % MINUTE_MS}:*" for e in timed))

    def minutes_of_m() -> dict[str, int] | None:
        got = {k.decode(): int(v) for k, v in job.r.hgetall(job.layout.item_minutes("m")).items()}
        return got if got == dict(expected) else None

    eventually(minutes_of_m, 90, "the exact minute counts of item m")
    now = now_ms()
    sums = minute_windows(job.r.hgetall(job.layout.item_minutes("m")), now)
    newest = now - now % MINUTE_MS
    for w, span in WINDOWS_MIN.items():
        oldest = newest - (span - 1) * MINUTE_MS
        inside = [e for e in timed if oldest <= e.event_time_ms - e.event_time_ms % MINUTE_MS <= newest]
        assert sums[w].get("*", 0) == len(inside), w
        assert sums[w].get("like", 0) == sum(e.type == "like" for e in inside), w
    assert sums["1h"]["*"] == len(timed)
    ttl = job.r.ttl(job.layout.item_minutes("m"))
    assert 0 < ttl <= job.settings.speed.minute_retention_s


def test_a_burst_by_many_users_trends_and_one_user_hammering_does_not(job: Job):
    t0 = now_ms()
    hot = [_e(f"fan{n}", "hot", "view", t0) for n in range(30)]
    steady = [_e(f"reg{n}", "steady", "view", t0) for n in range(30)]
    _send(job.settings, hot + steady)
    slide = job.settings.speed.trending_slide_s * 1000

    def trending_with_hot() -> dict[int, dict[bytes, float]] | None:
        latest = job.r.get(job.layout.trending_latest())
        if latest is None or int(latest) < t0 + 1000:
            return None
        ends = range(t0 - t0 % slide + slide, int(latest) + 1, slide)
        sets = {end: dict(job.r.zrange(job.layout.trending(end), 0, -1, withscores=True)) for end in ends}
        return sets if any(b"hot" in z for z in sets.values()) else None

    # one user hammering one item the whole time (and moving the watermark forward)
    with Ticker(job.settings, lambda t: [_e("bot", "hammer", "click", t) for _ in range(20)]):
        sets = eventually(trending_with_hot, 60, "item 'hot' trending")
    members = set().union(*(set(z) for z in sets.values()))
    assert b"hammer" not in members  # hundreds of events, one user
    assert b"steady" not in members  # as many users as 'hot', but below its batch baseline
    minutes = job.r.hgetall(job.layout.item_minutes("hammer"))
    clicks = sum(int(n) for f, n in minutes.items() if f.endswith(b":click"))
    assert clicks > 0, minutes  # counted as engagement all the same
    assert 0 < job.r.ttl(job.layout.trending_latest()) <= job.settings.speed.trending_ttl_s


def test_a_shifted_stream_raises_the_drift_alert_and_an_in_distribution_one_does_not(job: Job):
    def window_with(alert: int) -> dict[str, str] | None:
        d = {k.decode(): v.decode() for k, v in job.r.hgetall(job.layout.drift()).items()}
        if d and int(d["events"]) >= 60 and int(d["alert"]) == alert:
            return d
        return None

    def spread(t: int, n: int, items: list[str]) -> list[Event]:
        return [_e(f"u{k}", items[k % len(items)], "view", t) for k in range(n)]

    size = job.settings.speed.drift_window_s * 1000
    time.sleep((size - now_ms() % size) / 1000 + 0.05)  # windows from here hold this test's events only
    with Ticker(job.settings, lambda t: spread(t, 2, IN_DISTRIBUTION)):
        _send(job.settings, spread(now_ms(), 200, IN_DISTRIBUTION))
        quiet = eventually(lambda: window_with(0), 60, "a full in-distribution window", interval_s=0.1)
        _send(job.settings, spread(now_ms(), 200, ["i0"]))  # all on a never-engaged item: bin 0
        loud = eventually(lambda: window_with(1), 60, "the drift alert", interval_s=0.1)
    assert float(quiet["item_pop"]) < 0.05 and quiet["view_version"] == "v000001"
    assert set(quiet) == {"item_pop", "alert", "window_end_ms", "events", "view_version"}
    assert float(loud["item_pop"]) > job.settings.speed.drift_psi_alert
    assert int(loud["window_end_ms"]) > int(quiet["window_end_ms"])
    assert 0 < job.r.ttl(job.layout.drift()) <= job.settings.redis.signal_ttl_s


def test_a_replay_of_the_signals_topic_rebuilds_the_same_redis_state(job: Job):
    prefix = job.settings.redis.key_prefix
    seen: list[dict[str, object]] = []

    def settled() -> bool:
        seen.append(redis_snapshot(job.r, prefix))
        return len(seen) > 8 and seen[-1] == seen[-8]

    eventually(settled, 60, "the speed view settling", interval_s=0.5)
    job.proc.stop(timeout_s=20)
    before = redis_snapshot(job.r, prefix)
    assert before == seen[-1] and any(":trending:" in k for k in before) and f"{prefix}:drift" in before
    # the live total since the version's as-of is every bucket at or after it, summed
    (since,) = [k for k in before if k.startswith(f"{prefix}:since:")]
    as_of = int(since.rsplit(":", 1)[1])
    summed: dict[bytes, float] = {}
    for key, members in before.items():
        if key.startswith(f"{prefix}:bucket:") and int(key.rsplit(":", 1)[1]) >= as_of:
            for item, n in members:  # type: ignore[attr-defined]
                summed[item] = summed.get(item, 0.0) + n
    assert dict(before[since]) == summed and summed  # type: ignore[call-overload]
    job.r.delete(*job.r.keys(f"{prefix}:*"))
    fresh = load_settings(environ={**job.iso.env, "LAMBDASTACK_SPEED__LOADER_GROUP": f"replay-{job.iso.tag}"})
    loader = SignalLoader(fresh)
    thread = threading.Thread(target=loader.run, daemon=True)
    thread.start()
    try:
        eventually(lambda: redis_snapshot(job.r, prefix) == before, 60, "the replay rebuilding Redis")
    finally:
        loader.stop()
        thread.join(10)
