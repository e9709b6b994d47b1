"""`doctor`: the health of the whole stack on one screen, and an exit code."""

from __future__ import annotations

import argparse

from tools.commands import settings_of


def doctor(args: argparse.Namespace) -> int:
    from tools.doctor.examine import examine
    from tools.doctor.screen import exit_code, render

    checks = examine(settings_of(args))
    print(render(checks))
    return exit_code(checks)
