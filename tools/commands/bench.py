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
