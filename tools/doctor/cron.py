"""The period of `batch.schedule`, a five-field cron expression, as the gap between its last two
runs before an instant (UTC): what `lambdastack doctor` judges a batch version's age against.

Fields: minute, hour, day of month, month, day of week (0-7, 0 and 7 Sunday), each `*`, a
number, a range `a-b`, a list `a,b` and a step `*/n` or `a-b/n`. As in cron, when both day
fields are restricted a day matches either. Names (`MON`, `JAN`) and `@daily` are not read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from lambdastack.errors import ConfigError

BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
LOOK_BACK_DAYS = 400  # a yearly schedule still shows two runs


def _field(text: str, lo: int, hi: int) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        span, _, step = part.partition("/")
        if span == "*":
            a, b = lo, hi
        elif "-" in span:
            a, b = (int(x) for x in span.split("-", 1))
        else:
            a = b = int(span)
        if not (lo <= a <= b <= hi) or (step and int(step) < 1):
            raise ValueError(part)
        out.update(range(a, b + 1, int(step) if step else 1))
    return out


@dataclass(frozen=True)
class Cron:
    minutes: set[int]
    hours: set[int]
    days: set[int]
    months: set[int]
    weekdays: set[int]  # 0 Sunday
    either_day: bool  # both day fields restricted: a day matches either (cron's rule)

    def day_matches(self, day: datetime) -> bool:
        if day.month not in self.months:
            return False
        in_dom, in_dow = day.day in self.days, (day.isoweekday() % 7) in self.weekdays
        return (in_dom or in_dow) if self.either_day else (in_dom and in_dow)


def parse(expr: str) -> Cron:
    fields = expr.split()
    if len(fields) != 5:
        raise ConfigError(f"batch.schedule {expr!r}: a cron expression has five fields")
    try:
        m, h, dom, mon, dow = (_field(f, lo, hi) for f, (lo, hi) in zip(fields, BOUNDS, strict=True))
    except ValueError as e:
        raise ConfigError(f"batch.schedule {expr!r}: {e} is not a field this reader takes") from None
    either = fields[2] != "*" and fields[4] != "*"
    return Cron(m, h, dom, mon, {d % 7 for d in dow}, either)


def last_runs(expr: str, before: datetime, n: int = 2) -> list[datetime]:
    """The newest `n` run times at or before `before`, newest first."""
    cron = parse(expr)
    minutes, hours = sorted(cron.minutes, reverse=True), sorted(cron.hours, reverse=True)
    out: list[datetime] = []
    day = before.replace(hour=0, minute=0, second=0, microsecond=0)
    for _ in range(LOOK_BACK_DAYS):
        if cron.day_matches(day):
            for t in (day.replace(hour=h, minute=m) for h in hours for m in minutes):
                if t <= before:
                    out.append(t)
                    if len(out) == n:
                        return out
        day -= timedelta(days=1)
    return out


def period_ms(expr: str, now_ms: int) -> int | None:
    """The gap between the schedule's last two runs before `now_ms` (None if it ran less)."""
    runs = last_runs(expr, datetime.fromtimestamp(now_ms / 1000, UTC))
    return int((runs[0] - runs[1]).total_seconds() * 1000) if len(runs) == 2 else None
