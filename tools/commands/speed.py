"""`speed ...`: the speed layer's commands (the job, its stop, the archiver, a Flink cluster)."""

from __future__ import annotations

import argparse

from tools.commands import settings_of


def speed_run(args: argparse.Namespace) -> int:
    from speed.control import resolve_savepoint
    from speed.job import run
    from speed.options import RunOptions

    s = settings_of(args)
    savepoint = resolve_savepoint(s, args.from_savepoint)
    run(s, RunOptions(parallelism=args.parallelism, cluster=args.cluster, from_savepoint=savepoint))
    return 0


def speed_stop(args: argparse.Namespace) -> int:
    from speed.control import stop_run

    path = stop_run(settings_of(args), savepoint=args.savepoint, timeout_s=args.timeout)
    print(f"stopped; savepoint {path}" if path else "stopped (no savepoint)")
    return 0


def speed_archive(args: argparse.Namespace) -> int:
    import signal

    from speed.archive import Archiver

    s = settings_of(args)
    archiver = Archiver(s)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _n, _f: archiver.stop())
    print(f"[archive] {s.topics.events} -> {s.path(s.data.master_dir)}", flush=True)
    archiver.run()
    done = f"{archiver.archived} events archived, {archiver.copies} copies left out"
    print(f"[archive] stopped ({done})", flush=True)
    return 0


def speed_cluster(args: argparse.Namespace) -> int:
    from tools.stack import flink

    s = settings_of(args)
    if args.state == "up":
        address = flink.start_cluster(s, s.state_dir)
        print(f"Flink cluster up; submit with `lambdastack speed run --cluster {address}`")
    else:
        print("Flink cluster stopped" if flink.stop_cluster(s.state_dir) else "no Flink cluster was running")
    return 0
