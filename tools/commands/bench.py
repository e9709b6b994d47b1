"""`bench ...`: the benchmarks, each writing JSON."""

from __future__ import annotations

import argparse
from pathlib import Path

from lambdastack.errors import DataError
from tools.commands import settings_of


def bench_batch(args: argparse.Namespace) -> int:
    from tools.bench import batch as bench

    s = settings_of(args)
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

    if (args.baseline_code is None) != (args.baseline_views is None):
        raise DataError(
            "--baseline-code and --baseline-views go together: an older checkout and a version it reads"
        )
    baseline = None
    if args.baseline_code is not None:
        code = Path(args.baseline_code)
        if not (code / "conf" / "lambdastack.yaml").is_file():
            raise DataError(
                f"--baseline-code: {code} is not a lambdastack checkout (no conf/lambdastack.yaml)"
            )
        baseline = (code, Path(args.baseline_views))
    result = bench.run(
        settings_of(args),
        Path(args.views) if args.views else None,
        tuple(args.connections),
        args.duration,
        args.repeats,
        baseline=baseline,
    )
    bench.write(result, Path(args.json))
    for name, t in result.get("targets", {}).items():
        print(f"{name}: measured {t['measured']} (target {t['target']}): {'met' if t['met'] else 'NOT met'}")
    print(f"results in {args.json}")
    return 0


def bench_speed(args: argparse.Namespace) -> int:
    from tools.bench import speed as bench

    s = settings_of(args)
    result = bench.run(s, args.rate, args.seconds, args.repeat)
    bench.write(result, Path(args.json))
    for r in result["summary"]:
        print(
            f"rate {r['rate']}: {r['throughput_eps']} events/s, freshness p50/p95/p99 "
            f"{r['freshness_ms']['p50']}/{r['freshness_ms']['p95']}/{r['freshness_ms']['p99']} ms"
        )
    print(f"results in {args.json}")
    return 0


def bench_soak(args: argparse.Namespace) -> int:
    from tools.bench import soak as bench

    if args.minutes <= 0 or args.events_per_s <= 0 or args.feeds_per_s <= 0:
        raise DataError("--minutes, --events-per-s and --feeds-per-s must be above 0")
    if not 0 <= args.warmup_minutes < args.minutes:
        raise DataError("--warmup-minutes must be at least 0 and less than --minutes")
    import signal

    def interrupted(signum: int, _frame: object) -> None:
        raise SystemExit(f"bench soak: stopped by signal {signum}; the stack it started is being stopped")

    signal.signal(signal.SIGTERM, interrupted)  # so that the soak's processes are stopped, not left behind
    views = Path(args.views) if args.views else None
    s = settings_of(args)
    result = bench.run(
        s,
        args.minutes,
        args.events_per_s,
        args.feeds_per_s,
        args.warmup_minutes,
        views,
        echo=lambda message: print(message, flush=True),
    )
    bench.write(result, Path(args.json))
    for name, t in result["targets"].items():
        print(f"{name}: measured {t['measured']} (target {t['target']}): {'met' if t['met'] else 'NOT met'}")
    print(f"results in {args.json}")
    return 0
