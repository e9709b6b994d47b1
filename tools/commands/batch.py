"""`batch ...`: the batch layer's commands (the job, batch predictions, the schedule)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lambdastack.errors import DataError
from tools.commands import settings_of


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

    vid = run(settings_of(args), _parse_as_of(args.as_of), args.master)
    print(vid)
    return 0


def batch_predict(args: argparse.Namespace) -> int:
    from batch.predict import predict

    predict(settings_of(args), Path(args.input), Path(args.output), args.version, args.master)
    return 0


def batch_crontab(args: argparse.Namespace) -> int:
    s = settings_of(args)
    log = s.state_dir / "logs" / "batch.log"
    print(f"{s.batch.schedule} cd {s.root} && .venv/bin/lambdastack batch run >> {log} 2>&1")
    return 0
