"""`lambdastack bench soak`: the whole stack for M minutes under a steady load.

Kafka and Redis (started if they are not running), `speed run` (Flink, the loader and the
archiver, on topics, consumer groups and a key prefix of the soak's own) and one API worker over a
published version; `events_per_s` events into the events topic and `feeds_per_s` feed requests for
the version's users, both paced. Every `sample_s` each process's resident memory is recorded (the
speed job's JVM and Python workers apart). Then the load stops and the soak waits for the end state.

Targets: no process grows more than 10% after the warm-up (its RSS at the first sample from
minute `warmup_minutes` against its highest after it; Redis apart, whose memory is the speed
view's data and grows as its retained windows fill: its `used_memory` is recorded beside), no
5xx, Redis's bucket counts equal to the events sent, each event archived once into the master
dataset.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from lambdastack.errors import ServiceError
from lambdastack.keys import KeyLayout
from lambdastack.settings import Settings, load_settings
from tools.bench.soak_load import EventLoad, FeedLoad, RssSampler, counts_diff, growth, require_delivered
from tools.bench.speed import tree_cpu
from tools.stack.process import ManagedProcess, wait_until

GROWTH_TARGET = 0.10
SETTLE_S = 180  # after the load: how long the counts and the archive may take to be complete
FEED_THREADS = 8  # a client waits for each answer: 2 held at most ~160 feeds/s at the soak's 12 ms mean


def soak_env(tag: str, work: Path, views: Path, api_port: int) -> dict[str, str]:
    """The speed bench's isolation (tools.bench.speed.bench_env), with the archive on into a
    master dataset of the soak's own, the version's views and the API's port."""
    from tools.bench.speed import bench_env

    return {
        **os.environ,
        **bench_env(tag),
        "LAMBDASTACK_SPEED__ARCHIVE_ENABLED": "true",
        "LAMBDASTACK_DATA__MASTER_DIR": str(work / "master"),
        "LAMBDASTACK_DATA__VIEWS_DIR": str(views),
        "LAMBDASTACK_SERVING__HOST": "127.0.0.1",
        "LAMBDASTACK_SERVING__PORT": str(api_port),
    }


@contextmanager
def _stack(settings: Settings, env: dict[str, str], work: Path) -> Iterator[tuple[int, int]]:
    """`speed run` and `serve` started, both ready; their pids; both stopped on exit."""
    from tools.bench.api_stack import api_ready
    from tools.bench.speed import start_job

    job = start_job(settings, env, work)
    api = ManagedProcess("bench-soak-api", work)
    try:
        api.start([sys.executable, "-m", "tools", "serve"], env=env)
        wait_until(lambda: api_ready(settings.serving.port), 120, "the soak's API ready", api)
        job_pid, api_pid = job.pid(), api.pid()
        if job_pid is None or api_pid is None:
            raise ServiceError(f"a process of the soak exited:\n{job.log_tail(20)}\n{api.log_tail(20)}")
        yield job_pid, api_pid
    finally:
        api.stop(timeout_s=20)
        job.stop(timeout_s=30)


def _redis_counts(settings: Settings, buckets: set[int]) -> dict[tuple[int, str], int]:
    import redis

    r = redis.Redis(host=settings.redis.host, port=settings.redis.port, db=settings.redis.db)
    keys = KeyLayout(settings.redis.key_prefix)
    out: dict[tuple[int, str], int] = {}
    for b in buckets:
        for item, score in r.zrange(keys.bucket(b), 0, -1, withscores=True):  # type: ignore[union-attr]
            out[(b, item.decode())] = int(score)
    return out


def _archived(master_dir: Path, run_id: str) -> list[str]:
    """The soak's event ids in the master dataset (with repeats, if any)."""
    from lambdastack.master import read

    if not master_dir.is_dir():
        return []
    ids = read(master_dir).column("event_id").to_pylist()
    return [i for i in ids if i.startswith(f"soak-{run_id}-")]


def _settle(settings: Settings, load: EventLoad, master_dir: Path) -> dict[str, Any]:
    """Wait (up to SETTLE_S) until Redis's counts and the archive hold exactly what was sent."""
    buckets = {b for b, _ in load.expected}
    deadline, counts, archived = time.monotonic() + SETTLE_S, {"cells": -1}, list[str]()
    while time.monotonic() < deadline:
        counts = counts_diff(_redis_counts(settings, buckets), load.expected)
        archived = _archived(master_dir, load.run_id)
        if counts["cells"] == 0 and len(archived) >= len(load.event_ids):
            break
        time.sleep(2)
    unique = set(archived)
    return {
        "events_sent": len(load.event_ids),
        "counts_exact": counts["cells"] == 0,
        "counts_differ": counts,
        "archived": len(archived),
        "archived_distinct": len(unique),
        "archive_exact": len(archived) == len(unique) == len(load.event_ids)
        and unique == set(load.event_ids),
    }


def _progress(
    echo: Callable[[str], None], t_s: float, events: EventLoad, feeds: FeedLoad, rss: RssSampler
) -> None:
    newest = {rss.roles[pid]: s[-1][1] for pid, s in rss.samples.items() if s}
    shown = ", ".join(f"{role} {mb:.0f}" for role, mb in sorted(newest.items()))
    echo(
        f"[soak] {t_s / 60:.1f} min: {len(events.event_ids)} events, {sum(feeds.statuses.values())} feeds, "
        f"{feeds.server_errors} 5xx, {len(feeds.errors)} connection errors; RSS MB: {shown}"
    )


def _drive(
    load: tuple[EventLoad, FeedLoad, RssSampler],
    seconds: float,
    pids: tuple[int, int],
    echo: Callable[[str], None],
) -> float:
    """Run the load for `seconds` (less if the speed job or the API dies); the seconds it ran."""
    events, feeds, rss = load
    stop, start = threading.Event(), time.monotonic()
    threads = [
        threading.Thread(target=events.run, args=(stop,), name="soak-events"),
        *(
            threading.Thread(target=feeds.run, args=(stop, k, FEED_THREADS), name=f"soak-feeds-{k}")
            for k in range(FEED_THREADS)
        ),
        threading.Thread(target=rss.run, args=(stop, start), name="soak-rss"),
    ]
    for t in threads:
        t.start()
    try:
        next_report = start + 60
        while (now := time.monotonic()) < start + seconds:
            if not all(psutil.pid_exists(p) for p in pids):
                raise ServiceError(f"a process of the soak died after {now - start:.0f} s: {rss.vanished}")
            if now >= next_report:
                _progress(echo, now - start, events, feeds, rss)
                next_report += 60
            time.sleep(min(1.0, max(0.0, start + seconds - now)))
    finally:
        stop.set()
        for t in threads:
            t.join()
    return time.monotonic() - start


def _processes(rss: RssSampler, warmup_s: float) -> list[dict[str, Any]]:
    return [
        {"pid": pid, "role": rss.roles[pid], **growth(samples, warmup_s), "samples": samples}
        for pid, samples in sorted(rss.samples.items(), key=lambda kv: rss.roles[kv[0]])
    ]


def _feed_figures(feeds: FeedLoad, seconds: float, api_cpu_s: float) -> dict[str, Any]:
    served = sum(feeds.statuses.values())
    lat = sorted(feeds.latencies_ms)

    def q(p: float) -> float | None:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))], 2) if lat else None

    return {
        "requests": served,
        "per_s": round(served / seconds, 1),
        "statuses": {str(k): v for k, v in sorted(feeds.statuses.items())},
        "server_errors": feeds.server_errors,
        "connection_errors": len(feeds.errors),
        "connection_error_examples": feeds.errors[:3],
        "latency_ms": {
            "p50": q(0.5),
            "p99": q(0.99),
            "max": lat[-1] if lat else None,
            "mean": round(statistics.fmean(lat), 2) if lat else None,
        },
        "api_cpu_ms_per_feed": round(1000 * api_cpu_s / served, 3) if served else None,
    }


def _redis_dataset(settings: Settings) -> Callable[[], dict[str, Any]]:
    """Redis's own account of what it holds: the data the speed view keeps (its memory grows with
    the retained windows, which is data, not a leak) and the keys."""
    import redis

    r = redis.Redis(host=settings.redis.host, port=settings.redis.port, db=settings.redis.db)

    def probe() -> dict[str, Any]:
        memory: dict[str, Any] = r.info("memory")  # type: ignore[assignment]
        return {"redis_used_memory_mb": round(memory["used_memory"] / 2**20, 1), "redis_keys": r.dbsize()}

    return probe


def _targets(processes: list[dict[str, Any]], feed: dict[str, Any], end: dict[str, Any]) -> dict[str, Any]:
    # every process but Redis, whose memory is the speed view's data: the retained minutes, hours
    # and seen sets fill over hours by design (its used_memory is recorded beside its RSS)
    grown = [p["growth"] for p in processes if p["growth"] is not None and p["role"] != "redis"]
    worst = max(grown, default=None)
    return {
        "rss_growth_after_warmup": {
            "measured": worst,
            "target": GROWTH_TARGET,
            "met": worst is not None and worst <= GROWTH_TARGET,
        },
        "server_errors": {"measured": feed["server_errors"], "target": 0, "met": feed["server_errors"] == 0},
        "counts_exact": {"measured": end["counts_exact"], "target": True, "met": end["counts_exact"]},
        "archive_exact": {"measured": end["archive_exact"], "target": True, "met": end["archive_exact"]},
    }


def _soak(
    s: Settings,
    env: dict[str, str],
    work: Path,
    views_dir: Path,
    rates: tuple[float, float, float, float],
    echo: Callable[[str], None],
) -> dict[str, Any]:
    """The stack started, loaded for `minutes` and settled: the measured part of the result."""
    from tools.bench.api_stack import version_ids
    from tools.stack import kafka, redis

    minutes, events_per_s, feeds_per_s, sample_s = rates
    users, items = version_ids(views_dir)
    paths = [f"/v1/users/{u}/feed?k=20" for u in [*users, *(f"soak-cold-{n}" for n in range(20))]]
    with _stack(s, env, work) as (job_pid, api_pid):
        infra = {"kafka": kafka.process(s).pid(), "redis": redis.process(s).pid()}
        roots = {"speed_run": job_pid, "api": api_pid, **{k: v for k, v in infra.items() if v}}
        new_users = [f"soak-new-{n}" for n in range(50)]  # users the version does not know
        events = EventLoad(s, [*users, *new_users], items, events_per_s, work.name)
        feeds = FeedLoad("127.0.0.1", s.serving.port, paths, feeds_per_s)
        rss = RssSampler(roots, sample_s, probe=_redis_dataset(s))
        cpu0 = {k: tree_cpu([p]) for k, p in roots.items()}
        seconds = _drive((events, feeds, rss), minutes * 60, (job_pid, api_pid), echo)
        cpu = {k: tree_cpu([p]) - cpu0[k] for k, p in roots.items()}
        require_delivered(events)
        echo("[soak] load stopped; waiting for the counts and the archive ...")
        end = _settle(s, events, s.path(s.data.master_dir))
    per_event = 1e6 * cpu["speed_run"] / max(1, len(events.event_ids))
    return {
        "seconds": round(seconds, 1),
        "events": {
            **end,
            "per_s": round(len(events.event_ids) / seconds, 1),
            "speed_cpu_us_per_event": round(per_event, 1),
        },
        "feeds": _feed_figures(feeds, seconds, cpu["api"]),
        "cpu_cores": {k: round(v / seconds, 3) for k, v in cpu.items()},
        "rss": rss,
    }


def run(
    settings: Settings,
    minutes: float,
    events_per_s: float,
    feeds_per_s: float,
    warmup_minutes: float,
    views: Path | None,
    echo: Callable[[str], None] = print,
    sample_s: float = 10.0,
) -> dict[str, Any]:
    """Soak the stack for `minutes`; the figures and whether each target was met."""
    from tools.bench.api_stack import ensure_version, free_port
    from tools.stack import kafka
    from tools.stack.manager import up_infra

    up_infra(settings, echo)
    tag = uuid.uuid4().hex[:8]
    work = settings.state_dir / "bench" / f"soak-{tag}"
    work.mkdir(parents=True, exist_ok=True)
    views_dir = ensure_version(settings, views, work, echo)
    env = soak_env(tag, work, views_dir, free_port())
    s = load_settings(environ=env)
    kafka.create_topics(s)
    load_start = os.getloadavg()[0]
    echo(
        f"[soak] {minutes} min at {events_per_s:.0f} events/s and {feeds_per_s:.0f} feeds/s, "
        f"load average {load_start:.2f}"
    )
    measured = _soak(s, env, work, views_dir, (minutes, events_per_s, feeds_per_s, sample_s), echo)
    rss: RssSampler = measured.pop("rss")
    processes = _processes(rss, warmup_minutes * 60)
    return {
        "machine": {
            "cpus": psutil.cpu_count(),
            "load_avg_1m_at_start": round(load_start, 2),
            "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "config": {
            "minutes": minutes,
            "events_per_s": events_per_s,
            "feeds_per_s": feeds_per_s,
            "warmup_minutes": warmup_minutes,
            "sample_s": sample_s,
            "views": str(views_dir),
        },
        **measured,
        "processes": processes,
        "processes_vanished": rss.vanished,
        "redis_dataset": rss.probed,
        "targets": _targets(processes, measured["feeds"], measured["events"]),
    }


def write(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
