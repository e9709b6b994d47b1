"""The feed's candidate pool (serving.pool.Pool) against the rule its docstring states, item by
item; `add_unseen`, its path for the neighbours (no seen checks; once full, the rest only give
their source to items in it), builds exactly the pool `add` builds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.pool import Pool

pytestmark = pytest.mark.unit

ITEMS = st.lists(st.sampled_from([f"i{n}" for n in range(30)]), max_size=40)


def _reference(history: frozenset[str], recent: frozenset[str], limit: int, calls) -> dict[str, list[str]]:
    sources: dict[str, list[str]] = {}
    for items, source, n in calls:
        taken = 0
        for item in items:
            if taken >= n:
                break
            if item in history or item in recent:
                continue
            taken += 1
            if item not in sources:
                if len(sources) >= limit:
                    continue
                sources[item] = []
            if source not in sources[item]:
                sources[item].append(source)
    return sources


@settings(max_examples=300, deadline=None)
@given(
    history=st.frozensets(st.sampled_from([f"i{n}" for n in range(30)]), max_size=8),
    recent=st.frozensets(st.sampled_from([f"i{n}" for n in range(30)]), max_size=8),
    limit=st.integers(0, 25),
    calls=st.lists(st.tuples(ITEMS, st.sampled_from("abcd"), st.integers(0, 30)), max_size=6),
)
def test_the_pool_is_the_item_by_item_rule(history, recent, limit, calls):
    pool = Pool(history, recent, limit)
    for items, source, n in calls:
        pool.add(iter(items), source, n)
    expected = _reference(history, recent, limit, calls)
    assert pool.sources == expected
    assert list(pool.sources) == list(expected)  # the order items were found in


@settings(max_examples=300, deadline=None)
@given(
    limit=st.integers(0, 25),
    before=st.lists(st.tuples(ITEMS, st.sampled_from("abc"), st.integers(0, 30)), max_size=3),
    unseen=st.lists(st.sampled_from([f"i{n}" for n in range(30)]), max_size=30, unique=True),
)
def test_add_unseen_is_add_for_items_the_user_has_not_seen(limit, before, unseen):
    seen = frozenset(f"i{n}" for n in range(30, 35))
    fast, plain = Pool(seen, frozenset(), limit), Pool(seen, frozenset(), limit)
    for items, source, n in before:
        fast.add(items, source, n)
        plain.add(items, source, n)
    fast.add_unseen(unseen, "knn")
    plain.add(unseen, "knn", len(unseen))
    assert fast.sources == plain.sources and list(fast.sources) == list(plain.sources)


def test_a_full_pool_still_gives_a_later_source_to_its_items_within_the_first_n():
    pool = Pool(frozenset({"seen"}), frozenset(), 2)
    pool.add(["a", "b"], "first", 2)
    pool.add(["seen", "c", "d", "b", "a"], "second", 3)  # unseen: c, d, b; a is beyond the first 3
    assert pool.sources == {"a": ["first"], "b": ["first", "second"]}
