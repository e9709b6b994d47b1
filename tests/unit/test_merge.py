import pytest

from serving.merge import BATCH_POPULAR, SPEED_FRESH, merge_feed

pytestmark = pytest.mark.unit


def test_counts_add_without_double_counting_and_sources_are_named():
    feed = merge_feed(["a", "b"], {"a": 10, "b": 8, "c": 0}, {"b": 5, "c": 20}, frozenset(), k=3)
    assert [(f.item_id, f.score, f.batch_count, f.speed_count) for f in feed] == [
        ("c", 20.0, 0, 20),
        ("b", 13.0, 8, 5),
        ("a", 10.0, 10, 0),
    ]
    assert feed[0].sources == (SPEED_FRESH,)
    assert feed[1].sources == (BATCH_POPULAR, SPEED_FRESH)


def test_seen_items_are_removed_and_k_is_respected():
    feed = merge_feed(["a", "b", "c"], {"a": 3, "b": 2, "c": 1}, {}, frozenset({"a"}), k=1)
    assert [f.item_id for f in feed] == ["b"]


def test_ties_break_by_item_id_for_a_stable_order():
    feed = merge_feed(["b", "a"], {"a": 1, "b": 1}, {}, frozenset(), k=2)
    assert [f.item_id for f in feed] == ["a", "b"]


def test_a_burst_lifts_an_item_above_batch_favourites():
    before = merge_feed(["a", "z"], {"a": 100, "z": 1}, {}, frozenset(), k=1)
    after = merge_feed(["a", "z"], {"a": 100, "z": 1}, {"z": 150}, frozenset(), k=1)
    assert before[0].item_id == "a" and after[0].item_id == "z"
