"""The `lambdastack` command: one entry point, a subcommand per layer, `--help` everywhere."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TypeAlias

from lambdastack import __version__
from lambdastack.errors import LambdastackError
from tools.commands import batch, bench, data, doctor, evaluation, registry, serving, speed, stack

Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"  # add_subparsers()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lambdastack", description=__doc__)
    p.add_argument("--version", action="version", version=f"lambdastack {__version__}")
    p.add_argument("--config", help="configuration file (default: conf/lambdastack.yaml)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _stack_commands,
        _data_commands,
        _batch_commands,
        _speed_commands,
        _serve_commands,
        _bench_commands,
        _eval_commands,
        _registry_commands,
    ):
        add(sub)
    return p


def _stack_commands(sub: Subcommands) -> None:
    """`up`, `down` and `stack ...`: the local stack."""
    up = sub.add_parser("up", help="start the whole local stack with demo data and print a feed URL")
    up.add_argument("--dataset", help="MovieLens folder to load (default: data.movielens_dir if present)")
    up.add_argument(
        "--synthetic", action="store_true", help="use the synthetic world even if MovieLens is present"
    )
    up.add_argument(
        "--events",
        type=int,
        default=100_000,
        help="events of the synthetic world (default 100000); users N/100 (50-1000), items N/200 (100-500)",
    )
    up.set_defaults(func=stack.up)
    sub.add_parser("down", help="stop everything `up` started").set_defaults(func=stack.down)

    group = sub.add_parser("stack", help="the native local stack (Kafka, Redis, Prometheus)")
    ss = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    ss.add_parser("fetch", help="resolve the JVM artifacts with Maven").set_defaults(func=stack.stack_fetch)
    ss.add_parser("up", help="start Kafka and Redis (idempotent)").set_defaults(func=stack.stack_up)
    ss.add_parser("down", help="stop every process of the stack").set_defaults(func=stack.down)
    ss.add_parser("status", help="what runs where").set_defaults(func=stack.stack_status)
    files = ss.add_parser(
        "prometheus-files", help="write prometheus.yml and the alert rules (rules.yml) from the settings"
    )
    files.add_argument("dir", help="the folder to write them into")
    files.add_argument(
        "--compose", action="store_true", help="scrape the compose services (infra/prometheus/ is this)"
    )
    files.set_defaults(func=stack.stack_prometheus_files)
    sub.add_parser(
        "doctor", help="one line per check of the whole stack; exit 0 when all is healthy"
    ).set_defaults(func=doctor.doctor)
    ss.add_parser(
        "supervise", help="restart what `up` started when it dies, with backoff (what `up` leaves running)"
    ).set_defaults(func=stack.stack_supervise)


def _data_commands(sub: Subcommands) -> None:
    """`data ...` and `produce`: events in."""
    group = sub.add_parser("data", help="load or generate interaction data into the master dataset")
    ds = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    load = ds.add_parser("load", help="import a dataset")
    ls = load.add_subparsers(dest="format", required=True, metavar="FORMAT")
    ml = ls.add_parser(
        "movielens", help="a MovieLens folder (ratings.csv/movies.csv/tags.csv or u.data/u.item)"
    )
    ml.add_argument("dir", help="the folder")
    ml.set_defaults(func=data.data_load_movielens)
    gen = ds.add_parser("generate", help="a synthetic world: tastes, tags, sessions, bursts, a viral item")
    gen.add_argument("--users", type=int, default=1000)
    gen.add_argument("--items", type=int, default=500)
    gen.add_argument("--events", type=int, default=100_000)
    gen.add_argument("--days", type=int, default=30)
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--output", help="write JSONL wire events here instead of the master dataset")
    gen.set_defaults(func=data.data_generate)

    prod = sub.add_parser("produce", help="send events to Kafka from a JSONL file or a simulated stream")
    src = prod.add_mutually_exclusive_group(required=True)
    src.add_argument("--file", help="JSONL file of wire events ('-' for standard input)")
    src.add_argument("--simulate", action="store_true", help="a stream from the synthetic world, timed now")
    prod.add_argument("--rate", type=float, default=0.0, help="events per second (0: as fast as possible)")
    prod.add_argument("--seconds", type=float, default=10.0, help="with --simulate: how long")
    prod.add_argument("--item", help="with --simulate: send a burst for this item instead")
    prod.add_argument("--user", default="burst-user", help="with --item: the user of the burst")
    prod.add_argument("--count", type=int, default=100, help="with --item: how many events")
    prod.set_defaults(func=data.produce)


def _batch_commands(sub: Subcommands) -> None:
    """`batch ...`: the batch layer."""
    group = sub.add_parser("batch", help="the batch layer (PySpark)")
    bs = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = bs.add_parser("run", help="compute the batch views and publish a new version")
    run.add_argument("--as-of", help="RFC 3339 instant; events before it (default: now, floored to a bucket)")
    run.add_argument("--master", help="Spark master URL (default: batch.spark_master)")
    run.set_defaults(func=batch.batch_run)
    pred = bs.add_parser("predict", help="score JSONL instances with a published ONNX ranker in Spark")
    pred.add_argument("--input", required=True, help="JSONL file: one object of feature values per line")
    pred.add_argument("--output", required=True, help="directory for predictions/, errors/, summary.json")
    pred.add_argument("--version", help="published version (default: the current one)")
    pred.add_argument("--master", help="Spark master URL (default: batch.spark_master)")
    pred.set_defaults(func=batch.batch_predict)
    bs.add_parser(
        "crontab", help="print the crontab line of the nightly schedule (batch.schedule)"
    ).set_defaults(func=batch.batch_crontab)


def _speed_commands(sub: Subcommands) -> None:
    """`speed ...`: the speed layer."""
    group = sub.add_parser("speed", help="the speed layer (PyFlink over Kafka)")
    sp = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    srun = sp.add_parser("run", help="run the streaming job and the Redis loader until stopped")
    srun.add_argument("--parallelism", type=int, help="default: speed.parallelism")
    srun.add_argument(
        "--cluster", metavar="HOST:PORT", help="submit to this Flink cluster's REST API (default: local)"
    )
    srun.add_argument(
        "--from-savepoint",
        metavar="PATH",
        help="resume from a savepoint: PATH, `latest` (the newest one `speed stop` took) or "
        "`checkpoint` (the newest completed checkpoint of the last job)",
    )
    srun.set_defaults(func=speed.speed_run)
    sstop = sp.add_parser("stop", help="stop the running `speed run` (as speed.savepoint_on_stop says)")
    sstop.add_argument("--savepoint", action="store_true", help="stop the job with a savepoint in any case")
    sstop.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the stop")
    sstop.set_defaults(func=speed.speed_stop)
    sp.add_parser("archive", help="only archive validated events into the master dataset").set_defaults(
        func=speed.speed_archive
    )
    scl = sp.add_parser("cluster", help="a standalone Flink cluster (JobManager + TaskManager)")
    scl.add_argument("state", choices=["up", "down"])
    scl.set_defaults(func=speed.speed_cluster)


def _serve_commands(sub: Subcommands) -> None:
    """`serve`: the serving layer."""
    serve = sub.add_parser("serve", help="the serving layer (FastAPI on uvicorn)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(func=serving.serve)


def _bench_commands(sub: Subcommands) -> None:
    """`bench ...`: the benchmarks."""
    group = sub.add_parser("bench", help="benchmarks that write JSON")
    bn = group.add_subparsers(dest="layer", required=True, metavar="LAYER")
    bb = bn.add_parser("batch", help="the batch job end to end on synthetic data and MovieLens")
    bb.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000], help="synthetic sizes")
    bb.add_argument("--movielens", help="MovieLens folder (default: data.movielens_dir if present)")
    bb.add_argument("--no-movielens", action="store_true", help="skip the MovieLens run")
    bb.add_argument("--json", required=True, help="where to write the results")
    bb.set_defaults(func=bench.bench_batch)
    bsv = bn.add_parser("serving", help="the API under wrk: feed vs a trivial endpoint, 1/8/32 connections")
    bsv.add_argument(
        "--views",
        help="a views directory with a published version (default: the configured one, "
        "else one published from synthetic data)",
    )
    bsv.add_argument("--connections", type=int, nargs="+", default=[1, 8, 32])
    bsv.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    bsv.add_argument("--repeats", type=int, default=3, help="runs per point (the median is recorded)")
    bsv.add_argument(
        "--baseline-code",
        help="an older checkout (a folder) whose API runs beside this one, runs interleaved",
    )
    bsv.add_argument("--baseline-views", help="a views directory with a version the baseline code reads")
    bsv.add_argument("--json", required=True, help="where to write the results")
    bsv.set_defaults(func=bench.bench_serving)
    bsp = bn.add_parser("speed", help="the speed layer end to end: producer, Kafka, Flink, Redis")
    bsp.add_argument("--rate", type=float, nargs="+", default=[1000.0, 10000.0], help="events per second")
    bsp.add_argument("--seconds", type=float, default=30.0, help="how long each rate is sustained")
    bsp.add_argument("--repeat", type=int, default=1, help="runs per rate (the JSON reports medians)")
    bsp.add_argument("--json", required=True, help="where to write the results")
    bsp.set_defaults(func=bench.bench_speed)
    bso = bn.add_parser("soak", help="the whole stack under steady load for minutes: RSS, 5xx, exact counts")
    bso.add_argument("--minutes", type=float, default=30.0, help="how long the load runs")
    bso.add_argument("--events-per-s", type=float, default=1000.0)
    bso.add_argument("--feeds-per-s", type=float, default=200.0)
    bso.add_argument(
        "--warmup-minutes", type=float, default=5.0, help="memory growth is measured from this minute on"
    )
    bso.add_argument(
        "--views",
        help="a views directory with a published version (default: the configured one, "
        "else one published from synthetic data)",
    )
    bso.add_argument("--json", required=True, help="where to write the results")
    bso.set_defaults(func=bench.bench_soak)


def _eval_commands(sub: Subcommands) -> None:
    """`eval ...` and `report`: evaluation and the benchmark report."""
    ev = sub.add_parser("eval", help="offline evaluation of the feed on a dataset")
    es = ev.add_subparsers(dest="action", required=True, metavar="ACTION")
    rp = es.add_parser(
        "replay", help="prequential replay of a MovieLens folder: HR@K and NDCG@K of each variant"
    )
    rp.add_argument("dataset_dir", help="a MovieLens folder (ml-latest CSVs or ml-100k u.data)")
    rp.add_argument("--json", required=True, help="where to write the results")
    rp.add_argument("--split", type=float, default=0.8, help="share of the events used as history")
    rp.add_argument("--k", type=int, default=10, help="feed length asked for")
    rp.add_argument("--limit", type=int, help="replay only the first N events after the cut")
    rp.add_argument("--work-dir", help="master/views of the replay (default: {state_dir}/eval/NAME-SPLIT)")
    rp.add_argument(
        "--retrains",
        type=int,
        default=0,
        metavar="K",
        help="re-run the batch job K times, evenly spaced over the replay, switching versions (default 0)",
    )
    rp.set_defaults(func=evaluation.eval_replay)
    rep = sub.add_parser("report", help="render the benchmark JSON files into REPORT.md with PNG plots")
    rep.add_argument(
        "--results", default="bench/results", help="folder of <layer>.json (default: %(default)s)"
    )
    rep.set_defaults(func=evaluation.report)


def _registry_commands(sub: Subcommands) -> None:
    """`registry ...`: published versions."""
    reg = sub.add_parser("registry", help="published batch versions")
    rs = reg.add_subparsers(dest="action", required=True, metavar="ACTION")
    rs.add_parser("list", help="every complete version, the current one marked").set_defaults(
        func=registry.registry_list
    )
    show = rs.add_parser("show", help="a version's manifest")
    show.add_argument("version", nargs="?", help="default: the current version")
    show.set_defaults(func=registry.registry_show)
    promote = rs.add_parser("promote", help="make a complete version current (serving and speed follow it)")
    promote.add_argument("version", help="a published version id, e.g. v000003")
    promote.set_defaults(func=registry.registry_promote)
    rs.add_parser(
        "rollback", help="make the newest complete version older than the current one current"
    ).set_defaults(func=registry.registry_rollback)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LambdastackError as e:
        print(f"lambdastack: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
