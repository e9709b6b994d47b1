"""What each CLI subcommand does. Heavy modules are imported inside each command."""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from lambdastack.errors import DataError, LambdastackError
from lambdastack.settings import Settings, load_settings


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(Path(args.config) if getattr(args, "config", None) else None)


def stack_fetch(args: argparse.Namespace) -> int:
    from tools.stack import jvm

    s = _settings(args)
    connector = s.speed.kafka_connector_version
    print(f"resolving Kafka {s.kafka.version} and flink-sql-connector-kafka {connector} ...")
    jvm.fetch(s)
    print(f"JVM artifacts in {jvm.jars_dir(s)}")
    return 0


def stack_up(args: argparse.Namespace) -> int:
    from tools.stack.manager import up_infra

    up_infra(_settings(args))
    return 0


def down(args: argparse.Namespace) -> int:
    from tools.stack.manager import down as stop_all

    stop_all(_settings(args))
    print("stack stopped")
    return 0


def stack_status(args: argparse.Namespace) -> int:
    from tools.stack.manager import status

    rows = status(_settings(args))
    for r in rows:
        state = f"running (pid {r.pid})" if r.running else "stopped"
        print(f"{r.name:<6} {state:<22} {r.address:<18} log: {r.log}")
    return 0


def _load_movielens(s: Settings, folder: Path) -> int:
    from lambdastack.master import append, write_catalogue
    from tools.datasets.movielens import read_folder

    data = read_folder(folder)
    n = append(data.events, s.path(s.data.master_dir), load_id=f"movielens-{uuid.uuid4().hex[:8]}")
    write_catalogue(data.items, s.path(s.data.catalogue_dir))
    print(f"loaded {n} events and {data.items.num_rows} items from {folder} ({data.source_format} format)")
    for line, reason in data.rejected[:20]:
        print(f"  rejected line {line}: {reason}", file=sys.stderr)
    if data.rejected:
        print(f"  {len(data.rejected)} rows rejected (listed above, first 20)", file=sys.stderr)
    return n


def data_load_movielens(args: argparse.Namespace) -> int:
    _load_movielens(_settings(args), Path(args.dir))
    return 0


def data_generate(args: argparse.Namespace) -> int:
    from lambdastack.master import append, write_catalogue
    from tools.datasets.synthetic import generate

    s = _settings(args)
    end = int(time.time() * 1000)
    start = end - args.days * 86_400_000
    events, items = generate(args.users, args.items, args.events, args.seed, start_ms=start, days=args.days)
    if args.output:
        from lambdastack.events import format_time

        with open(args.output, "w") as f:
            for row in events.to_pylist():
                row["event_time"] = format_time(int(row["event_time"].timestamp() * 1000))
                f.write(json.dumps(row, separators=(",", ":")) + "\n")
        print(f"wrote {events.num_rows} events to {args.output}")
        return 0
    n = append(events, s.path(s.data.master_dir), load_id=f"synthetic-{args.seed}-{end}")
    write_catalogue(items, s.path(s.data.catalogue_dir))
    print(
        f"generated {n} events, {items.num_rows} items, {args.users} users into {s.path(s.data.master_dir)}"
    )
    return 0


def produce(args: argparse.Namespace) -> int:
    from lambdastack.producer import EventProducer, send_lines

    s = _settings(args)
    with EventProducer(s) as producer:
        if args.file:
            src = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
            with src:
                sent, dead = send_lines(producer, src, args.rate, source=args.file)
        else:
            from tools.simulate import burst, stream

            events = burst(args.item, args.user, args.count) if args.item else stream(args.rate, args.seconds)
            sent, dead = 0, 0
            for event in events:
                producer.send(event)
                sent += 1
            producer.flush()
    print(f"sent {sent} events to {s.topics.events}; {dead} invalid sent to {s.topics.dead_letter}")
    return 0


def _parse_as_of(value: str | None) -> int | None:
    if value is None:
        return None
    from lambdastack.events import parse_time

    try:
        return parse_time(value)
    except ValueError as e:
        raise DataError(f"--as-of: {e}") from None


def batch_run(args: argparse.Namespace) -> int:
    from batch.job import run

    vid = run(_settings(args), _parse_as_of(args.as_of), args.master)
    print(vid)
    return 0


def batch_predict(args: argparse.Namespace) -> int:
    from batch.predict import predict

    predict(_settings(args), Path(args.input), Path(args.output), args.version, args.master)
    return 0


def batch_crontab(args: argparse.Namespace) -> int:
    s = _settings(args)
    log = s.state_dir / "logs" / "batch.log"
    print(f"{s.batch.schedule} cd {s.root} && .venv/bin/lambdastack batch run >> {log} 2>&1")
    return 0


def bench_batch(args: argparse.Namespace) -> int:
    from tools.bench import batch as bench

    s = _settings(args)
    movielens = (
        None
        if args.no_movielens
        else Path(args.movielens)
        if args.movielens
        else s.path(s.data.movielens_dir)
    )
    if movielens is not None and not movielens.is_dir():
        if args.movielens:
            raise DataError(f"--movielens: {movielens} is not a folder")
        movielens = None
    result = bench.run(s, args.events, movielens)
    bench.write(result, Path(args.json))
    for r in result["runs"]:
        print(f"{r['name']}: {r['wall_s']} s, peak {r['peak_rss_mb']} MB")
    print(f"results in {args.json}")
    return 0


def bench_serving(args: argparse.Namespace) -> int:
    from tools.bench import serving as bench

    result = bench.run(
        _settings(args),
        Path(args.views) if args.views else None,
        tuple(args.connections),
        args.duration,
        args.repeats,
    )
    bench.write(result, Path(args.json))
    for name, t in result.get("targets", {}).items():
        print(f"{name}: measured {t['measured']} (target {t['target']}): {'met' if t['met'] else 'NOT met'}")
    print(f"results in {args.json}")
    return 0


def speed_run(args: argparse.Namespace) -> int:
    from speed.control import resolve_savepoint
    from speed.job import run
    from speed.options import RunOptions

    s = _settings(args)
    savepoint = resolve_savepoint(s, args.from_savepoint)
    run(s, RunOptions(parallelism=args.parallelism, cluster=args.cluster, from_savepoint=savepoint))
    return 0


def speed_stop(args: argparse.Namespace) -> int:
    from speed.control import stop_run

    path = stop_run(_settings(args), savepoint=args.savepoint, timeout_s=args.timeout)
    print(f"stopped; savepoint {path}" if path else "stopped (no savepoint)")
    return 0


def speed_archive(args: argparse.Namespace) -> int:
    import signal

    from speed.archive import Archiver

    s = _settings(args)
    archiver = Archiver(s)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _n, _f: archiver.stop())
    print(f"[archive] {s.topics.events} -> {s.path(s.data.master_dir)}", flush=True)
    archiver.run()
    print(f"[archive] stopped ({archiver.archived} events archived)", flush=True)
    return 0


def speed_cluster(args: argparse.Namespace) -> int:
    from tools.stack import flink

    s = _settings(args)
    if args.state == "up":
        address = flink.start_cluster(s, s.state_dir)
        print(f"Flink cluster up; submit with `lambdastack speed run --cluster {address}`")
    else:
        print("Flink cluster stopped" if flink.stop_cluster(s.state_dir) else "no Flink cluster was running")
    return 0


def bench_speed(args: argparse.Namespace) -> int:
    from tools.bench import speed as bench

    s = _settings(args)
    result = bench.run(s, args.rate, args.seconds, args.repeat)
    bench.write(result, Path(args.json))
    for r in result["summary"]:
        print(
            f"rate {r['rate']}: {r['throughput_eps']} events/s, freshness p50/p95/p99 "
            f"{r['freshness_ms']['p50']}/{r['freshness_ms']['p95']}/{r['freshness_ms']['p99']} ms"
        )
    print(f"results in {args.json}")
    return 0


def serve(args: argparse.Namespace) -> int:
    from lambdastack.settings import default_config_path
    from serving.server import run

    config = Path(args.config) if getattr(args, "config", None) else default_config_path()
    run(config, host=args.host, port=args.port, workers=args.workers)
    return 0


def registry_list(args: argparse.Namespace) -> int:
    from lambdastack.versions import VersionLayout

    s = _settings(args)
    layout = VersionLayout(s.path(s.data.views_dir))
    current = layout.current()
    for vid in layout.list_versions():
        m = layout.manifest(vid)
        mark = "*" if vid == current else " "
        print(f"{mark} {vid}  as-of {m['as_of_ms']}  events {m['input']['events']}")
    if current is None:
        print("no version published yet")
    return 0


def registry_show(args: argparse.Namespace) -> int:
    from lambdastack.versions import VersionLayout

    s = _settings(args)
    layout = VersionLayout(s.path(s.data.views_dir))
    vid = args.version or layout.require_current()
    print(json.dumps(layout.manifest(vid), indent=2, sort_keys=True))
    return 0


def registry_promote(args: argparse.Namespace) -> int:
    from lambdastack.registry import promote
    from lambdastack.versions import VersionLayout

    s = _settings(args)
    change = promote(VersionLayout(s.path(s.data.views_dir)), args.version)
    print(f"current version: {change.version} (was {change.previous or 'none'})")
    return 0


def registry_rollback(args: argparse.Namespace) -> int:
    from lambdastack.registry import rollback
    from lambdastack.versions import VersionLayout

    s = _settings(args)
    change = rollback(VersionLayout(s.path(s.data.views_dir)))
    print(f"current version: {change.version} (was {change.previous})")
    return 0


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


def up(args: argparse.Namespace) -> int:
    from lambdastack.versions import VersionLayout
    from tools.stack.manager import start_app, up_infra

    s = _settings(args)
    up_infra(s)
    master = s.path(s.data.master_dir)
    movielens = Path(args.dataset) if args.dataset else s.path(s.data.movielens_dir)
    if any(master.glob("event_date=*")):
        print(f"master dataset already holds data: {master}")
    elif movielens.is_dir() and not args.synthetic:
        _load_movielens(s, movielens)
    else:
        data_generate(
            argparse.Namespace(
                config=args.config, users=1000, items=500, events=100_000, days=30, seed=7, output=None
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
    user = _demo_user(s)
    url = f"http://{s.serving.host}:{s.serving.port}/v1/users/{user}/feed?k=10"
    feed = _wait_for_feed(url, s.stack.ready_timeout_s)
    items = feed.get("items")
    items = items if isinstance(items, list) else []
    print(f"\nlambdastack is up. Feed of demo user {user} ({len(items)} items):\n  {url}")
    if items:
        last = items[-1]
        print(f"Make item {last['item_id']} (count {last['count']}) rise in that feed, then fetch it again:")
        print(f"  .venv/bin/lambdastack produce --simulate --item {last['item_id']} --count 300")
    print("Stop everything:  make down")
    return 0


def _demo_user(s: Settings) -> str:
    import pyarrow.parquet as pq

    from lambdastack.versions import VersionLayout

    layout = VersionLayout(s.path(s.data.views_dir))
    hist = pq.read_table(layout.view_dir(layout.require_current(), "user_history"), columns=["user_id"])
    return str(hist["user_id"][0].as_py()) if hist.num_rows else "demo"


def eval_replay(args: argparse.Namespace) -> int:
    from tools.evaluation import replay
    from tools.evaluation.report import eval_table, write_json

    if args.k < 1:
        raise DataError(f"--k must be at least 1, not {args.k}")
    if args.limit is not None and args.limit < 1:
        raise DataError(f"--limit must be at least 1, not {args.limit}")
    s = _settings(args)
    work = Path(args.work_dir) if args.work_dir else None
    result = replay.run(
        s, Path(args.dataset_dir), args.split, args.k, work, args.limit, lambda m: print(m, flush=True)
    )
    write_json(result, Path(args.json))
    print(eval_table(result))
    print(f"results in {args.json}")
    return 0


def report(args: argparse.Namespace) -> int:
    from tools.evaluation.report import render

    out, missing = render(Path(args.results))
    print(f"report in {out}" + (f" (missing: {', '.join(missing)})" if missing else ""))
    return 0
