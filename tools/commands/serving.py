"""`serve`: the serving layer."""

from __future__ import annotations

import argparse
from pathlib import Path


def serve(args: argparse.Namespace) -> int:
    from lambdastack.settings import default_config_path
    from serving.server import run

    config = Path(args.config) if getattr(args, "config", None) else default_config_path()
    run(config, host=args.host, port=args.port, workers=args.workers)
    return 0
