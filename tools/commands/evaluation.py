"""`eval ...` and `report`: the offline evaluation and the benchmark report."""

from __future__ import annotations

import argparse
from pathlib import Path

from lambdastack.errors import DataError
from tools.commands import settings_of


def eval_replay(args: argparse.Namespace) -> int:
    from tools.evaluation import replay
    from tools.evaluation.report import eval_table, write_json

    if args.k < 1:
        raise DataError(f"--k must be at least 1, not {args.k}")
    if args.limit is not None and args.limit < 1:
        raise DataError(f"--limit must be at least 1, not {args.limit}")
    if args.retrains < 0:
        raise DataError(f"--retrains must be 0 or more, not {args.retrains}")
    s = settings_of(args)
    work = Path(args.work_dir) if args.work_dir else None
    result = replay.run(
        s,
        Path(args.dataset_dir),
        args.split,
        args.k,
        work,
        args.limit,
        lambda m: print(m, flush=True),
        retrains=args.retrains,
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
