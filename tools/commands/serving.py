"""`serve`: the serving layer."""

from __future__ import annotations

import argparse

from tools.commands import settings_of


def serve(args: argparse.Namespace) -> int:
    from serving.server import run

    run(settings_of(args), host=args.host, port=args.port, workers=args.workers)
    return 0
