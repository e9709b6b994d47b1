"""The replay's speed state and variants on a hand-made world: the speed layer's functions fold
the events, the serving layer's merge reads them, and each query sees only earlier events."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lambdastack.events import Event
from lambdastack.features import ItemSide, UserState
from lambdastack.item_matrix import ItemMatrix
from lambdastack.settings import load_settings
from lambdastack.speedstore.memory import zrevrange
from serving.batch_view import BatchView
from serving.feed import FeedConfig, rank_feed
from serving.served_version import ServedVersion
from speed.scoring_view import ScoringView
from speed.user_window import entry, parse_window
from tools.evaluation.metrics import rank_in_feed
from tools.evaluation.references import ItemKnn, RecentPopular
from tools.evaluation.replay import references, replay
from tools.evaluation.speedstate import SpeedState
from tools.evaluation.split import Split
from tools.evaluation.variants import (
    BATCH_ONLY,
    MERGED,
    POPULARITY,
    SPEED_ONLY,
    Variants,
    catalogue_only,
    catalogue_scorer,
)

pytestmark = pytest.mark.unit
AS_OF = 1_800_000_000_000  # a bucket start
H = 3_600_000
ITEMS = [f"i{n}" for n in range(20)]


def side() -> ItemSide:
    rng = np.random.default_rng(3)
    return ItemSide({i: rng.normal(size=4) for i in ITEMS}, {i: [f"g{n % 3}"] for n, i in enumerate(ITEMS)})


def served_version() -> ServedVersion:
    s = side()
    counts = {i: 100 - n for n, i in enumerate(ITEMS)}  # i0 most popular
    state = UserState()
    s.apply(state, "i0", AS_OF - 10, "rating", 5.0)
    profile = {
        "n": state.n,
        "interest": state.interest.tolist() if state.interest is not None else None,
        "t_ref": state.t_ref,
        "genre_names": sorted(state.genres),
        "genre_counts": [state.genres[g] for g in sorted(state.genres)],
        "last_item": state.last_item,
        "last_t": state.last_t,
    }
    ids = np.asarray(ITEMS, dtype=object)
    view = BatchView(
        version="v000001",
        as_of_ms=AS_OF,
        item_ids=ids,
        item_events=np.asarray([counts[i] for i in ITEMS], dtype=np.int64),
        titles={},
        history={"old": frozenset({"i0"})},
        index={i: n for n, i in enumerate(ITEMS)},
        side=s,
        profiles={"old": profile},
        popular_lists={"global": tuple(ITEMS)},
        matrix=ItemMatrix.build(s, counts),
    )
    return ServedVersion(view, None)


NEIGHBOURS = {i: (ITEMS[(n + 1) % 20], ITEMS[(n + 2) % 20]) for n, i in enumerate(ITEMS)}


def scorer(view: BatchView) -> ScoringView:
    return ScoringView(
        version="v000001",
        as_of_ms=AS_OF,
        side=view.side,
        counts={i: view.count(i) for i in ITEMS},
        neighbours=NEIGHBOURS,
        profiles={},
        history=dict(view.history),
        ranker=lambda x: 1 / (1 + np.exp(-x[:, 0])),  # P(positive) grows with popularity
    )


def variants(k: int = 5, **env: str) -> Variants:
    settings = load_settings(environ=env)
    full = served_version()
    scoring = scorer(full.view)
    state = SpeedState(settings, {MERGED: scoring, SPEED_ONLY: catalogue_scorer(scoring)}, {}, AS_OF)
    return Variants(full, ServedVersion(catalogue_only(full.view), None), state, FeedConfig(), k)


def ev(n: int, user: str, item: str, t: int, etype: str = "rating", value: float = 5.0) -> Event:
    return Event(f"e{n}", user, item, etype, value, t)


def test_zrevrange_orders_like_redis():
    assert zrevrange({"a": 2, "b": 3, "c": 2}, 2) == [("b", 3.0), ("c", 2.0)]


def test_entries_parse_back_as_the_speed_layer_reads_them():
    e = ev(1, "u", "i3", AS_OF + 5, "watch", 12.5)
    (parsed,) = parse_window(entry(e))
    assert (parsed.item_id, parsed.type, parsed.value, parsed.event_time_ms, parsed.event_id) == (
        "i3",
        "watch",
        12.5,
        AS_OF + 5,
        "e1",
    )


def test_counts_cover_buckets_since_the_as_of_and_movers_rank_them():
    v = variants()
    for n, (item, t) in enumerate([("i9", AS_OF + 1), ("i9", AS_OF + H + 1), ("i8", AS_OF + H + 2)]):
        v.state.apply(ev(n, f"u{n}", item, t))
    snap = v.state.read_feed("x", AS_OF, AS_OF + H + 10, ["i9", "i8", "i1"], MERGED)
    assert snap.counts == {"i9": 2, "i8": 1}
    assert snap.movers == (("i9", 2), ("i8", 1))
    # a newer batch version (as-of one bucket later) retires the first bucket
    later = v.state.read_feed("x", AS_OF + H, AS_OF + H + 10, ["i9"], MERGED)
    assert later.counts == {"i9": 1, "i8": 1}


def test_recent_keeps_the_last_n_interactions_oldest_first():
    v = variants()
    n_recent = load_settings(environ={}).speed.user_recent_n
    for n in range(n_recent + 3):
        v.state.apply(ev(n, "u", ITEMS[n % 20], AS_OF + n))
    recent = v.state.read_feed("u", AS_OF, AS_OF + 100, [], MERGED).recent
    assert [r.event_time_ms for r in recent] == [AS_OF + n for n in range(3, n_recent + 3)]


def test_the_feed_never_shows_what_the_user_interacted_with_since_the_as_of_beyond_recent():
    """The harness's replay state (the loader's own writes) of a user with more interactions
    since the as-of than `recent` holds: the read's seen set holds every one of them, and the
    feed returns none of them (it would return the older ones without it)."""
    n_recent = 5  # the world has 20 items
    v = variants(k=20, LAMBDASTACK_SPEED__USER_RECENT_N=str(n_recent))
    # the most popular items first, each once, three more than `recent` keeps, then one repeat
    events = [ev(n, "u", ITEMS[n], AS_OF + 10 * n, "view", 1.0) for n in range(n_recent + 3)]
    events.append(ev(99, "u", ITEMS[3], AS_OF + 10 * (n_recent + 3), "view", 1.0))
    for e in events:
        v.state.apply(e)
    now = AS_OF + 10 * (n_recent + 4)
    read = v.state.read_feed("u", AS_OF, now, [], MERGED)
    interacted = {e.item_id for e in events}
    assert read.seen == interacted and len(read.recent) == n_recent
    assert ITEMS[0] not in {i.item_id for i in read.recent}  # only the seen set holds the oldest
    for feed in (v.merged("u", now), v.speed_only("u", now)):
        assert feed and not {item for item, _, _ in feed} & interacted, feed
    without = rank_feed(v.full, dataclasses.replace(read, seen=frozenset()), "u", 20, now, v.cfg)
    assert ITEMS[0] in {i.item_id for i in without.items}  # what the seen set keeps out
    later = v.state.read_feed("u", AS_OF + 10, now, [], MERGED)  # a newer version's as-of
    assert later.seen == interacted - {ITEMS[0]}


def test_fresh_candidates_come_from_the_scoring_udf_on_positive_events_only():
    v = variants()
    v.state.apply(ev(1, "u", "i4", AS_OF + 1))
    fresh = v.state.read_feed("u", AS_OF, AS_OF + 2, [], MERGED).fresh
    assert fresh is not None and [i for i, _ in fresh.items] == ["i5", "i6"]  # neighbours, by popularity
    v.state.apply(ev(2, "u", "i10", AS_OF + 3, "skip", 1.0))
    again = v.state.read_feed("u", AS_OF, AS_OF + 4, [], MERGED).fresh
    assert again == fresh  # a skip is never positive: the fresh field stays
    assert v.state.read_feed("u", AS_OF, AS_OF + 4, [], None).fresh is None


def test_speed_only_sees_no_batch_popularity_but_batch_only_does():
    v = variants()
    assert [r[0] for r in v.batch_only("new", AS_OF + 1)][:1] == ["i0"]
    assert v.popularity("new", AS_OF + 1)[0] == ("i0", -0.0, ("batch_popular",))
    assert v.speed_only("new", AS_OF + 1) == []  # no history, no speed signal: nothing to propose


def test_replay_asks_before_applying_and_skips_repeats():
    v = variants(k=3)
    history = (ev(0, "old", "i0", AS_OF - 10),)
    # 30 users pick i19 (the least popular item of the batch view), then a new and a known user
    test = tuple(ev(n, f"b{n}", "i19", AS_OF + n) for n in range(1, 31)) + (
        ev(31, "new", "i19", AS_OF + 40),
        ev(32, "old", "i19", AS_OF + 41),
        ev(33, "old", "i19", AS_OF + 42),  # a repeat: applied, not asked
    )
    out = replay(v, Split(AS_OF, history, test), echo=lambda _: None, keep_queries=True)
    board, asked = out.board, out.asked
    assert len(asked) == 32
    first = asked[0]
    assert "i19" not in first.feeds[MERGED]  # nothing about i19 was known before the first event
    s = board.summary()
    assert s[MERGED]["segments"]["known"]["count"] == 1
    assert s[MERGED]["segments"]["new"]["count"] == 31
    # after the burst the speed view's movers put i19 into the merged feed; batch_only never
    assert s[MERGED]["segments"]["all"]["hr"][2] > 0
    assert s[BATCH_ONLY]["segments"]["all"]["hr"][2] == 0
    assert s[POPULARITY]["segments"]["all"]["hr"][2] == 0
    assert rank_in_feed([(i, 0.0) for i in asked[-1].feeds[MERGED]], "i19") is not None


def test_catalogue_only_keeps_items_embeddings_and_neighbours():
    full = served_version().view
    empty = catalogue_only(full)
    assert empty.count("i0") == 0 and empty.popular() == () and empty.seen("old") == frozenset()
    assert empty.knn is full.knn and empty.side is full.side
    assert dataclasses.replace(empty).matrix.counts.sum() == 0


def test_references_are_asked_the_same_questions_and_coverage_and_sources_are_reported():
    v = variants(k=3)
    history = (ev(0, "old", "i0", AS_OF - 10), ev(1, "old", "i1", AS_OF - 9), ev(2, "x", "i1", AS_OF - 8))
    test = tuple(ev(n, f"b{n}", "i19", AS_OF + n) for n in range(3, 9)) + (ev(9, "old", "i2", AS_OF + 20),)
    split = Split(AS_OF, history, test)
    board = replay(v, split, echo=lambda _: None, refs=references(split)).board
    s = board.summary(catalogue=20)
    for name in (RecentPopular.name, ItemKnn.name):
        assert s[name]["segments"]["all"]["count"] == len(test)
    # after the first b-user picked i19, recent_popular ranks it first for every later one
    assert s[RecentPopular.name]["segments"]["new"]["hr"][0] == pytest.approx(5 / 6)
    assert s[RecentPopular.name]["coverage"] == pytest.approx(4 / 20)  # i0, i1, i19 and i2
    share = s[MERGED]["source_share"]
    assert share and all(0 < x <= 1 for x in share.values())
    assert s[POPULARITY]["source_share"] == {"batch_popular": 1.0}
    assert "source_share" not in s[ItemKnn.name]
