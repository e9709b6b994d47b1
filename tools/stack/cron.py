"""The longest wait between two runs of a five-field cron schedule (`batch.schedule`), for the
alert on a stale batch version (tools/stack/alerts.py).

Fields: minute, hour, day of month, month, day of week (0 or 7 is Sunday), each `*`, a number, a
range `a-b`, a list `a,b`, a step `*/n` or `a-b/n`, and month or day names (`jan`, `mon`). When
both day fields are restricted a day matches either, as cron does. The runs are laid out over
eight years from a fixed date (two leap cycles), so a schedule on 29 February is measured too.
"""

from __future__ import annotations

import datetime as dt

from lambdastack.errors import ConfigError

NAMES = {
    3: ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    4: ("sun", "mon", "tue", "wed", "thu", "fri", "sat"),
}
BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
FIELD_NAMES = ("minute", "hour", "day of month", "month", "day of week")
SPAN_DAYS = 8 * 365 + 2
START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _value(text: str, index: int) -> int:
    names = NAMES.get(index, ())
    if text.lower() in names:
        return names.index(text.lower()) + (1 if index == 3 else 0)
    if not text.isdigit():
        raise ValueError(f"{text!r} is not a number")
    return int(text)


def _field(text: str, index: int) -> set[int]:
    """The values one field allows."""
    lo, hi = BOUNDS[index]
    out: set[int] = set()
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        step = _value(step_text, index) if step_text else 1
        if span == "*":
            first, last = lo, hi
        elif "-" in span:
            a, b = span.split("-", 1)
            first, last = _value(a, index), _value(b, index)
        else:
            first = _value(span, index)
            last = hi if step_text else first
        if not lo <= first <= last <= hi or step < 1:
            raise ValueError(f"{part!r} is outside {lo}-{hi} or empty")
        out.update(range(first, last + 1, step))
    return {0 if index == 4 and v == 7 else v for v in out}


def longest_gap_s(schedule: str) -> int:
    """Seconds of the longest wait between two consecutive runs of `schedule`."""
    fields = schedule.split()
    if len(fields) != 5:
        raise ConfigError(f"batch.schedule {schedule!r}: a cron schedule has five fields")
    try:
        minutes, hours, days, months, weekdays = (_field(f, i) for i, f in enumerate(fields))
    except ValueError as e:
        raise ConfigError(f"batch.schedule {schedule!r}: {e}") from None
    day_star, weekday_star = fields[2].startswith("*"), fields[4].startswith("*")
    times = sorted(h * 3600 + m * 60 for h in hours for m in minutes)
    runs: list[int] = []
    for n in range(SPAN_DAYS):
        day = START + dt.timedelta(days=n)
        by_day, by_weekday = day.day in days, (day.isoweekday() % 7) in weekdays
        # cron: a day matches both day fields, or either when both are restricted
        matches = (by_day and by_weekday) if day_star or weekday_star else (by_day or by_weekday)
        if day.month in months and matches:
            base = int(day.timestamp())
            runs.extend(base + t for t in times)
    if len(runs) < 2:
        raise ConfigError(f"batch.schedule {schedule!r} runs less than twice in eight years")
    return max(b - a for a, b in zip(runs, runs[1:], strict=False))
