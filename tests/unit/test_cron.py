"""The longest wait between two runs of a cron schedule (tools/stack/cron.py), which sets the stale
batch version alert's threshold."""

import re

import pytest

from lambdastack.errors import ConfigError
from tools.stack.cron import longest_gap_s

pytestmark = pytest.mark.unit
HOUR, DAY = 3600, 86400


@pytest.mark.parametrize(
    ("schedule", "gap"),
    [
        ("0 2 * * *", DAY),  # conf/'s nightly run
        ("*/15 * * * *", 900),
        ("30 1,13 * * *", 12 * HOUR),
        ("0 2 * * 1", 7 * DAY),
        ("0 2 * * mon", 7 * DAY),
        ("0 3 * * mon-fri", 3 * DAY),  # Friday to Monday
        ("0 0 * * 0,7", 7 * DAY),  # 0 and 7 are both Sunday
        ("0 0 1 * *", 31 * DAY),  # the longest month
        ("0 0 1 jan,jul *", 184 * DAY),  # July to January
        ("0 0 29 2 *", (4 * 365 + 1) * DAY),  # a leap day to the next (within the window)
        ("0 0 1 * 0", 7 * DAY),  # both days restricted: the 1st or a Sunday, as cron reads it
        ("0 0-23/6 * * *", 6 * HOUR),
    ],
)
def test_the_longest_gap_of_a_schedule(schedule, gap):
    assert longest_gap_s(schedule) == gap


@pytest.mark.parametrize(
    ("schedule", "reason"),
    [
        ("0 2 * *", "five fields"),
        ("61 2 * * *", "outside 0-59"),
        ("0 2 * * fun", "is not a number"),
        ("0 0 30 2 *", "runs less than twice"),
        ("0 5-3 * * *", "outside 0-23 or empty"),
    ],
)
def test_a_schedule_cron_cannot_read_is_refused_in_a_sentence(schedule, reason):
    with pytest.raises(ConfigError, match=rf"batch.schedule {re.escape(repr(schedule))}.*{reason}"):
        longest_gap_s(schedule)
