"""speed.minutes_written: the (item, minute) pairs the loader wrote, handed back once past a cutoff."""

from __future__ import annotations

import pytest

from speed.minutes_written import MinutesWritten

pytestmark = pytest.mark.unit
MIN = 60_000


def test_minutes_before_the_cutoff_come_back_once_by_minute():
    w = MinutesWritten()
    for item, minute in (("a", 2), ("b", 1), ("a", 1), ("a", 1), ("c", 3), ("b", 3)):
        w.mark(item, minute * MIN)  # a repeated write is one pair
    assert len(w) == 3
    assert w.pop_before(3 * MIN) == [("a", MIN), ("b", MIN), ("a", 2 * MIN)]
    assert w.pop_before(3 * MIN) == [] and len(w) == 1
    w.mark("d", 3 * MIN)  # an item numbered after the minute's flags were made
    assert sorted(w.pop_before(4 * MIN)) == [("b", 3 * MIN), ("c", 3 * MIN), ("d", 3 * MIN)]
    assert len(w) == 0


def test_memory_is_a_byte_per_item_and_minute():
    w = MinutesWritten()
    for minute in range(70):
        for n in range(10_000):
            w.mark(f"i{n}", minute * MIN)
    assert sum(len(f) for f in w._minutes.values()) == 70 * 10_000
    assert len(w.pop_before(70 * MIN)) == 700_000
