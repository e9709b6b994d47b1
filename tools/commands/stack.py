"""`up`, `down` and `stack ...`: the local stack, and the demo that `up` starts on it."""

from __future__ import annotations

import argparse
import json
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

from lambdastack.errors import LambdastackError
from lambdastack.settings import Settings
from tools.commands import settings_of
from tools.commands.data import data_generate, load_movielens


def stack_fetch(args: argparse.Namespace) -> int:
    from tools.stack import jvm

    s = settings_of(args)
    connector = s.speed.kafka_connector_version
    print(f"resolving Kafka {s.kafka.version} and flink-sql-connector-kafka {connector} ...")
    jvm.fetch(s)
    print(f"JVM artifacts in {jvm.jars_dir(s)}")
    return 0


def stack_up(args: argparse.Namespace) -> int:
    from tools.stack.manager import up_infra

    up_infra(settings_of(args))
    return 0


def stack_prometheus_files(args: argparse.Namespace) -> int:
    from tools.stack import prometheus

    folder = Path(args.dir)
    write = prometheus.compose_files if args.compose else prometheus.write_files
    config = write(settings_of(args), folder)
    print(f"wrote {config} and {folder / prometheus.RULES}")
    return 0


def stack_supervise(args: argparse.Namespace) -> int:
    import signal
    import threading

    from tools.stack.manager import supervise

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: stop.set())
    supervise(settings_of(args), stop)
    return 0


def down(args: argparse.Namespace) -> int:
    from tools.stack.manager import down as stop_all

    stop_all(settings_of(args))
    print("stack stopped")
    return 0


def stack_status(args: argparse.Namespace) -> int:
    from tools.stack.manager import speed_health, status

    s = settings_of(args)
    rows = status(s)
    for r in rows:
        state = f"running (pid {r.pid})" if r.running else "stopped"
        again = "" if r.restarts is None else f"restarts {r.restarts:<3} "
        print(f"{r.name:<10} {state:<22} {r.address:<18} {again}log: {r.log}")
    h = speed_health(s)
    if h.ok:
        lag = "unknown" if h.lag is None else f"{h.lag:,} records"
        print(f"speed layer: healthy (heartbeat {(h.beat_age_ms or 0) / 1000:.1f} s ago, loader lag {lag})")
    else:
        running = any(r.name == "speed" and r.running for r in rows)
        print(f"speed layer: {'UNHEALTHY' if running else 'down'}: {h.problem}")
    return 0


def up(args: argparse.Namespace) -> int:
    from lambdastack.versions import VersionLayout
    from tools.stack import prometheus
    from tools.stack.manager import start_app, start_supervisor, up_infra

    s = settings_of(args)
    up_infra(s)
    master = s.path(s.data.master_dir)
    movielens = Path(args.dataset) if args.dataset else s.path(s.data.movielens_dir)
    if any(master.glob("event_date=*")):
        print(f"master dataset already holds data: {master}")
    elif movielens.is_dir() and not args.synthetic:
        load_movielens(s, movielens)
    else:
        n = args.events
        users, items = min(1000, max(50, n // 100)), min(500, max(100, n // 200))
        data_generate(
            argparse.Namespace(
                config=args.config, users=users, items=items, events=n, days=30, seed=7, output=None
            )
        )
    from batch.job import run as batch_run_job

    layout = VersionLayout(s.path(s.data.views_dir))
    if layout.current() is None:
        batch_run_job(s)
    print("starting the speed job ...")
    start_app(s, "speed", ["speed", "run"])
    print("starting the API ...")
    start_app(s, "api", ["serve"])
    print(
        f"starting Prometheus on {s.prometheus.host}:{s.prometheus.port} "
        "(alert rules: tools/stack/alerts.py) ..."
    )
    prometheus.start(s)
    start_supervisor(s)
    user = _demo_user(s)
    url = f"http://{s.serving.host}:{s.serving.port}/v1/users/{user}/feed?k=10"
    feed = _wait_for_feed(url, s.stack.ready_timeout_s)
    items = feed.get("items")
    items = items if isinstance(items, list) else []
    print(f"\nlambdastack is up. Feed of demo user {user} ({len(items)} items):\n  {url}")
    print(f"Explorer (the same feed, live, with like/skip buttons):\n  {explorer_url(s, user)}")
    if items:
        last = items[-1]
        print(f"Make item {last['item_id']} (count {last['count']}) rise in that feed, then fetch it again:")
        print(f"  .venv/bin/lambdastack produce --simulate --item {last['item_id']} --count 300")
    print(f"Prometheus (targets, alerts): {prometheus.url(s)}/alerts")
    print("A supervisor restarts what dies (`lambdastack stack status` shows the restarts).")
    print("Stop everything:  make down")
    return 0


def explorer_url(s: Settings, user: str) -> str:
    """The explorer page opened on `user`'s feed (serving/routes/explorer.py)."""
    return f"http://{s.serving.host}:{s.serving.port}/ui/?user={quote(user)}"


def _wait_for_feed(url: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return dict(json.loads(r.read()))
        except OSError as e:
            last = str(e)
            time.sleep(0.5)
    raise LambdastackError(f"the feed at {url} did not answer within {timeout_s:.0f} s ({last})")


def _demo_user(s: Settings) -> str:
    import pyarrow.parquet as pq

    from lambdastack.versions import VersionLayout

    layout = VersionLayout(s.path(s.data.views_dir))
    hist = pq.read_table(layout.view_dir(layout.require_current(), "user_history"), columns=["user_id"])
    return str(hist["user_id"][0].as_py()) if hist.num_rows else "demo"
