"""The doctor's screen, pure: one line per check (mark, name, what was found) cut to the width,
then each problem's sentence, wrapped; and the exit code: 0 when every check is ok (or skipped
because what it reads is down, which its own check reports), 1 when the worst is a warning, 2
when a check failed."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from tools.doctor.checks import Check

WIDTH = 80
MARKS = {"ok": "ok", "warn": "WARN", "fail": "FAIL", "skip": "--"}
NAME_WIDTH = 14


def line(c: Check, width: int = WIDTH) -> str:
    text = f"{MARKS[c.status]:<5}{c.name:<{NAME_WIDTH}} {c.detail}"
    return text if len(text) <= width else text[: width - 3] + "..."


def render(checks: Sequence[Check], width: int = WIDTH) -> str:
    lines = [line(c, width) for c in checks]
    problems = [c for c in checks if c.problem]
    if not problems:
        lines += ["", "healthy: every check is ok"]
        return "\n".join(lines)
    lines += ["", f"{len(problems)} problem{'s' if len(problems) > 1 else ''}:"]
    for c in problems:
        lines += textwrap.wrap(
            c.todo, width, initial_indent="- ", subsequent_indent="  ", break_on_hyphens=False
        )
    return "\n".join(lines)


def exit_code(checks: Sequence[Check]) -> int:
    if any(c.status == "fail" for c in checks):
        return 2
    return 1 if any(c.status == "warn" for c in checks) else 0
