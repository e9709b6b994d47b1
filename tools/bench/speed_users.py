"""Throughput of the user pipeline inside the real speed job: `python -m tools.bench.speed_users`.

Needs Kafka, Redis and a published version (the configured stack and views). Writes a backlog of
synthetic events for the version's users and items to fresh topics, starts `lambdastack speed run`
on them (counters and user pipeline together, as deployed), and times from the first user hash in
Redis until the `fresh` of marker events produced last is there: events per second of the user
pipeline catching up, scoring every positive event.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid

import numpy as np
import redis

from lambdastack.events import Event
from lambdastack.keys import KeyLayout
from lambdastack.producer import EventProducer
from lambdastack.published import PublishedVersion
from lambdastack.settings import Settings, load_settings
from lambdastack.versions import VersionLayout
from speed import scoring_view
from tools.stack import kafka

MARKERS = 8
TYPES = ["view", "click", "like", "share", "skip", "watch", "rating"]
TYPE_P = [0.55, 0.15, 0.10, 0.03, 0.10, 0.05, 0.02]


def _events(settings: Settings, n: int, seed: int) -> list[Event]:
    layout = VersionLayout(settings.path(settings.data.views_dir))
    snap = scoring_view.load(PublishedVersion(layout, layout.require_current()))
    users, items = sorted(snap.profiles), sorted(snap.neighbours)
    rng = np.random.default_rng(seed)
    now = int(time.time() * 1000)
    u, i = rng.integers(0, len(users), n), rng.integers(0, len(items), n)
    t = rng.choice(len(TYPES), n, p=TYPE_P)
    return [
        Event(
            f"b{k}",
            users[u[k]],
            items[i[k]],
            TYPES[t[k]],
            4.0 if TYPES[t[k]] == "rating" else 1.0,
            now - n + k,
        )
        for k in range(n)
    ]


def run(settings: Settings, n: int, timeout_s: float) -> dict[str, float]:
    """Produce the backlog, run the job, time the user pipeline; returns the figures."""
    tag = uuid.uuid4().hex[:8]
    env = {k: v for k, v in os.environ.items()}
    for key, value in {
        "TOPICS__EVENTS": f"b{tag}.events",
        "TOPICS__SIGNALS": f"b{tag}.signals",
        "TOPICS__DEAD_LETTER": f"b{tag}.dlq",
        "TOPICS__USERS": f"b{tag}.users",
        "REDIS__KEY_PREFIX": f"b{tag}",
        "SPEED__CONSUMER_GROUP": f"b{tag}-speed",
        "SPEED__LOADER_GROUP": f"b{tag}-loader",
        "SPEED__USERS_GROUP": f"b{tag}-users",
    }.items():
        env[f"LAMBDASTACK_{key}"] = value
    s = load_settings(environ=env)
    kafka.create_topics(s)
    events = _events(s, n, seed=1)
    markers = [
        Event(f"m{k}", f"bench-marker-{k}", events[k].item_id, "like", 1.0, events[-1].event_time_ms + 1)
        for k in range(MARKERS)
    ]
    with EventProducer(s) as producer:
        for e in events + markers:
            producer.send(e)
    r, keys = redis.Redis(host=s.redis.host, port=s.redis.port), KeyLayout(s.redis.key_prefix)
    proc = subprocess.Popen([sys.executable, "-m", "tools", "speed", "run"], env=env)
    try:
        started = time.monotonic()
        while not r.exists(keys.user(events[0].user_id)):
            if time.monotonic() - started > timeout_s or proc.poll() is not None:
                raise RuntimeError("the speed job wrote no user state")
            time.sleep(0.05)
        first = time.monotonic()
        pending = {keys.user(m.user_id) for m in markers}
        while pending:
            pending = {k for k in pending if not r.hexists(k, "fresh")}
            if time.monotonic() - first > timeout_s:
                raise RuntimeError(f"{len(pending)} marker users got no fresh candidates in {timeout_s} s")
            time.sleep(0.05)
        done = time.monotonic()
    finally:
        proc.terminate()
        proc.wait(60)
    positive = sum(1 for e in events if e.type != "skip")
    return {
        "events": n + MARKERS,
        "positive_events_scored": positive + MARKERS,
        "start_to_first_s": round(first - started, 2),
        "first_to_last_s": round(done - first, 2),
        "events_per_s": round((n + MARKERS) / (done - first), 1),
    }


def run_pure(settings: Settings, n: int, window_n: int) -> dict[str, float]:
    """The scoring function alone, one process: windows of `window_n` events, positive last."""
    from speed.scoring import fresh_value
    from speed.user_window import ENTRY_SEP, FIELD_SEP

    layout = VersionLayout(settings.path(settings.data.views_dir))
    snap = scoring_view.load(PublishedVersion(layout, layout.require_current()))
    events = _events(settings, n + window_n, seed=2)
    sp = settings.speed
    started, cpu = time.perf_counter(), time.process_time()
    for k in range(n):
        w = events[k : k + window_n - 1] + [Event("x", events[k].user_id, events[k].item_id, "like", 1.0, 0)]
        raw = ENTRY_SEP.join(
            FIELD_SEP.join((e.item_id, e.type, str(e.value), str(e.event_time_ms), e.event_id)) for e in w
        )
        fresh_value(snap, w[-1].user_id, raw, sp.fresh_n, sp.fresh_seeds, sp.fresh_neighbours_n)
    took, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "scored": n,
        "window_n": window_n,
        "seconds": round(took, 2),
        "scored_per_s": round(n / took, 1),
        "scored_per_cpu_s": round(n / cpu, 1),  # the figure for a host not shared with others
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--pure", action="store_true", help="time the scoring function alone, no services")
    args = p.parse_args()
    s = load_settings()
    result = (
        run_pure(s, args.events, s.speed.user_window_n) if args.pure else run(s, args.events, args.timeout)
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
