import pytest

from lambdastack.keys import KeyLayout
from speed.trending import TrendingRule, WindowCount, decode_counts, rank, trending_writes, z_score

pytestmark = pytest.mark.unit
RULE = TrendingRule(window_s=600, min_users=5, min_z=3.0, min_expected=1.0, top_n=2)


def test_decode_the_items_of_a_window_record():
    assert decode_counts("i1 7 9;i2 5 5") == [WindowCount("i1", 7, 9), WindowCount("i2", 5, 5)]
    assert decode_counts("") == [] and decode_counts(None) == []


def test_rank_scores_velocity_against_the_batch_rate():
    counts = [
        WindowCount("new", 10, 10),  # no baseline: expected = the floor (1 user)
        WindowCount("popular", 30, 40),  # 120/h -> 20 expected in 10 min: z = 10/sqrt(20) = 2.24
        WindowCount("quiet", 12, 12),  # 6/h -> 1 expected: z = 11
        WindowCount("bot", 1, 500),  # one user hammering: fewer than min_users
    ]
    ranked = rank(counts, {"popular": 120.0, "quiet": 6.0}, RULE)
    assert ranked == [("quiet", 11.0), ("new", 9.0)]
    assert z_score(30, 20.0) < RULE.min_z


def test_rank_keeps_the_top_n_and_breaks_ties_by_item():
    counts = [WindowCount(i, 6, 6) for i in ("c", "a", "b")]
    assert rank(counts, {}, RULE) == [("a", 5.0), ("b", 5.0)]


def test_trending_writes_replace_the_window_and_move_latest_forward_only():
    layout = KeyLayout("ls")
    writes = trending_writes(60_000, [("a", 5.0)], layout, 7200, newest=True)
    assert [(w.op, w.key, w.member, w.value) for w in writes] == [
        ("del", "ls:trending:60000", "", None),
        ("zadd", "ls:trending:60000", "a", 5.0),
        ("set", "ls:trending:latest", "", 60000),
    ]
    assert all(w.ttl_s == 7200 for w in writes[1:])
    older = trending_writes(0, [], layout, 7200, newest=False)
    assert [(w.op, w.key) for w in older] == [("del", "ls:trending:0")]
