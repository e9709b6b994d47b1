"""The reference recommenders on a case small enough to check by hand."""

import math

import pytest

from lambdastack.events import Event
from tools.evaluation.references import ItemKnn, RecentPopular, pessimistic_rank

pytestmark = pytest.mark.unit


def _events(pairs):
    return [Event(f"e{n}", u, i, "view", 1.0, 1_000 + n) for n, (u, i) in enumerate(pairs)]


# a: x y   b: x y z   c: z w   ->  cos(x,y) = 1, cos(x,z) = cos(y,z) = 1/2, cos(z,w) = 1/sqrt(2), cos(x,w) = 0
HISTORY = _events([("a", "x"), ("b", "x"), ("b", "y"), ("a", "y"), ("b", "z"), ("c", "z"), ("c", "w")])


def test_item_knn_scores_are_decayed_sums_of_cosines():
    knn = ItemKnn(HISTORY, n_recent=20, decay=0.9)
    s = dict(zip(knn.catalogue.index, knn.scores("a"), strict=True))  # a's last items: y (1), x (0.9)
    assert s["z"] == pytest.approx(1 * 0.5 + 0.9 * 0.5)
    assert s["w"] == pytest.approx(0.0)
    c = dict(zip(knn.catalogue.index, knn.scores("c"), strict=True))  # c: w (1), z (0.9)
    assert c["x"] == pytest.approx(0.9 * 0.5) and c["y"] == pytest.approx(0.9 * 0.5)


def test_item_knn_ranks_pessimistically_and_masks_what_the_user_saw():
    knn = ItemKnn(HISTORY)
    assert knn.rank("a", "z", seen={"x", "y"}) == 0
    assert knn.rank("a", "w", seen={"x", "y"}) == 1
    # x and y tie for c: each counts the other against it
    assert knn.rank("c", "x", seen={"z", "w"}) == 1
    assert knn.rank("c", "y", seen={"z", "w"}) == 1
    # an item the history never saw scores 0 and ties with every other unseen zero
    assert knn.rank("a", "new", seen={"x", "y"}) == 2


def test_item_knn_follows_replayed_events_and_keeps_only_the_last_n():
    knn = ItemKnn(HISTORY, n_recent=20, decay=0.9)
    knn.apply(Event("r1", "a", "w", "view", 1.0, 9_000))
    s = dict(zip(knn.catalogue.index, knn.scores("a"), strict=True))
    assert s["z"] == pytest.approx(1 / math.sqrt(2) + 0.9 * 0.5 + 0.81 * 0.5)
    short = ItemKnn(HISTORY, n_recent=1)
    assert dict(zip(short.catalogue.index, short.scores("a"), strict=True))["z"] == pytest.approx(0.5)
    # a brand-new user has no recent items: every item scores 0
    assert not knn.scores("nobody").any()


def test_recent_popular_counts_only_events_since_the_as_of():
    pop = RecentPopular(catalogue=["i1", "i2", "i3"])
    assert pop.rank("u", "i1", seen=()) == 2  # nothing counted yet: a three-way tie at 0
    for item in ("i1", "i1", "i2", "i9"):
        pop.apply(Event("e", "u", item, "view", 1.0, 1))
    assert pop.rank("u", "i1", seen=()) == 0
    assert pop.rank("u", "i2", seen=()) == 2  # i1 above, i9 ties with it
    assert pop.rank("u", "i2", seen={"i1"}) == 1
    assert pop.rank("u", "i3", seen=()) == 3


def test_pessimistic_rank_counts_ties_and_ignores_masked_items():
    import numpy as np

    scores = np.array([0.5, 0.9, 0.5, 0.1])
    assert pessimistic_rank(scores, 0, np.array([], dtype=np.int64)) == 2
    assert pessimistic_rank(scores, 0, np.array([1, 2])) == 0
