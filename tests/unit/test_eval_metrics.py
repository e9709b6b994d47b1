import math

import pytest

from tools.evaluation.metrics import Cell, Scoreboard, binned, hit, ndcg, rank_in_feed

pytestmark = pytest.mark.unit


def test_rank_in_feed_is_the_position_when_scores_differ():
    feed = [("a", 0.9), ("b", 0.8), ("c", 0.7)]
    assert rank_in_feed(feed, "a") == 0
    assert rank_in_feed(feed, "c") == 2


def test_rank_in_feed_counts_every_tie_against_the_target():
    feed = [("a", 0.9), ("b", 0.5), ("c", 0.5), ("d", 0.5), ("e", 0.1)]
    # b is placed second but two others score as high: rank 3, not 1
    assert rank_in_feed(feed, "b") == 3
    assert rank_in_feed(feed, "d") == 3
    assert rank_in_feed(feed, "e") == 4


def test_rank_in_feed_counts_items_placed_before_even_with_lower_scores():
    # a diversified feed can place a lower score first
    feed = [("x", 0.2), ("y", 0.9)]
    assert rank_in_feed(feed, "y") == 1


def test_rank_in_feed_drops_seen_items_and_misses_absent_ones():
    feed = [("seen", 0.9), ("a", 0.8)]
    assert rank_in_feed(feed, "a", exclude={"seen"}) == 0
    assert rank_in_feed(feed, "zzz") is None


def test_hit_and_ndcg_at_k():
    assert hit(0, 1) == 1.0 and hit(1, 1) == 0.0 and hit(None, 10) == 0.0
    assert ndcg(0, 10) == 1.0
    assert ndcg(2, 10) == pytest.approx(1 / math.log2(4))
    assert ndcg(10, 10) == 0.0 and ndcg(None, 10) == 0.0


def test_cell_averages_hr_and_ndcg_at_every_k():
    cell = Cell(3)
    for rank in (0, 2, None, 5):
        cell.add(rank)
    s = cell.summary()
    assert s["count"] == 4
    assert s["hr"] == [0.25, 0.25, 0.5]
    assert s["ndcg"][2] == pytest.approx((1 + 0.5) / 4, abs=1e-6)


def test_scoreboard_keeps_segments_overall_and_time():
    board = Scoreboard(2, ("known", "new"))
    board.add("merged", "known", 0, 0.002, 10)
    board.add("merged", "new", None, 0.004, 20)
    out = board.summary(time_bins=2)["merged"]
    assert out["segments"]["all"]["count"] == 2
    assert out["segments"]["known"]["hr"] == [1.0, 1.0]
    assert out["segments"]["new"]["ndcg"] == [0.0, 0.0]
    assert out["ms_per_query"] == pytest.approx(3.0)
    assert [p["t_ms"] for p in out["ndcg_over_time"]] == [10, 20]
    assert board.ndcg_at_k("merged") == 0.5


def test_binned_means_equal_groups():
    pts = [(t, float(t % 2)) for t in range(6)]
    assert [b["mean"] for b in binned(pts, 3)] == [0.5, 0.5, 0.5]
    assert binned([], 3) == []
