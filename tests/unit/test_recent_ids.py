"""speed.recent_ids: each id once within the TTL, forgotten after it, memory bounded by it."""

from __future__ import annotations

import pytest

from speed.recent_ids import RecentIds

pytestmark = pytest.mark.unit


def test_a_copy_within_the_ttl_is_refused_and_one_after_it_is_new():
    ids = RecentIds(ttl_s=10)
    assert ids.first_time("a", 0.0) and ids.first_time("b", 1.0)
    assert not ids.first_time("a", 9.9) and not ids.first_time("b", 10.5)
    assert not ids.first_time("a", 10.0)  # kept at least the TTL (at most a second more)
    # a copy does not extend the id's life: remembered from its first arrival
    assert ids.first_time("a", 11.0)  # forgotten, new again
    assert ids.first_time("b", 12.0) and len(ids) == 2


def test_memory_holds_the_ids_of_one_ttl():
    ids = RecentIds(ttl_s=1000)
    for n in range(10_000):
        assert ids.first_time(f"e{n}", float(n))  # one id a second
    assert len(ids) == 1001  # those of the last 1000 s (and of the second before)
    ids.forget_before(20_000.0)
    assert len(ids) == 0


def test_remembered_ids_from_before_a_restart_are_copies_until_their_ttl_ends():
    ids = RecentIds(ttl_s=60)
    ids.remember(["x", "y"], at_s=100.0)
    ids.remember(["y", "z"], at_s=130.0)  # y keeps its first time
    assert not ids.first_time("x", 150.0) and not ids.first_time("z", 150.0)
    assert ids.first_time("y", 162.0) and not ids.first_time("z", 190.0)
    assert ids.first_time("x", 162.0)
