"""What each CLI subcommand does, one module per command group (tools/cli.py builds the parser).
Heavy modules are imported inside each command."""

from __future__ import annotations

import argparse
from pathlib import Path

from lambdastack.settings import Settings, load_settings


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings of a command: its --config file, else the default."""
    return load_settings(Path(args.config) if getattr(args, "config", None) else None)
