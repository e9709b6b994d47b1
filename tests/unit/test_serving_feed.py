"""The feed as a pure function: sources, seen filtering, online features, model ranking,
diversity, cold start, degraded and no-version modes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from lambdastack.candidate_features import evidence_columns
from lambdastack.features import FEATURE_NAMES, ItemSide, UserState
from lambdastack.item_matrix import ItemMatrix
from lambdastack.model import Ranker, load_ranker
from lambdastack.retrieval import NeighbourIndex
from lambdastack.speedview import FreshCandidates, Interaction, SpeedRead
from serving.batch_view import BatchView
from serving.feed import (
    BATCH_ALS,
    BATCH_CANDIDATES,
    BATCH_POPULAR,
    CLUSTER_POPULAR,
    RECENT_NEIGHBOURS,
    SPEED_FRESH,
    SPEED_POPULAR,
    TRENDING,
    FeedConfig,
    batch_side,
    candidate_pool,
    diversify,
    known_candidates,
    rank_feed,
)
from serving.online_features import feature_matrix, online_state
from serving.recent import Retrieval
from serving.served_version import ServedVersion

pytestmark = pytest.mark.unit
AS_OF = 1_800_000_000_000
NOW = AS_OF + 3_600_000
GENRES = ["drama", "comedy", "sports", "news"]
U1_ALS = np.array([1.0, 0.5, -0.5])  # u1's ALS factors (u2 has none)


def tiny_model() -> bytes:
    """A real ONNX ranker (logistic regression via skl2onnx) that likes affinity and popularity."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, len(FEATURE_NAMES)))
    y = (x[:, 2] * 2 + x[:, 0] * 0.5 + rng.normal(scale=0.3, size=400) > 0).astype(int)
    clf = LogisticRegression().fit(x, y)
    onnx = convert_sklearn(
        clf,
        initial_types=[("features", FloatTensorType([None, len(FEATURE_NAMES)]))],
        options={id(clf): {"zipmap": False}},
        target_opset=17,
    )
    return onnx.SerializeToString()


def _neighbours(ids: list[str]) -> dict[str, tuple[str, str]]:
    """Each item's two neighbours in the test world: the next two items, in a ring."""
    return {i: (ids[(n + 1) % len(ids)], ids[(n + 2) % len(ids)]) for n, i in enumerate(ids)}


def world(n_items: int = 40, model: bytes | None = None, version: str = "v000001") -> ServedVersion:
    """A served version of 40 items in 4 genres, users u1 (warm, cluster 0) and u2 (one event), no u3."""
    rng = np.random.default_rng(1)
    ids = [f"i{n}" for n in range(n_items)]
    vectors = {i: rng.normal(size=8) for i in ids}
    genres = {i: [GENRES[n % 4]] for n, i in enumerate(ids)}
    als = {i: np.random.default_rng(n).normal(size=3) for n, i in enumerate(ids[:30])}
    first = {i: AS_OF - 86_400_000 * (n + 1) for n, i in enumerate(ids)}
    side = ItemSide(vectors, genres, als, first)
    events = {i: 1000 - 10 * n for n, i in enumerate(ids)}
    u1 = UserState(als=U1_ALS)
    for n, item in enumerate(["i0", "i4", "i8"]):
        side.apply(u1, item, AS_OF - 1000 + n, "like", 1.0)
    u2 = UserState()
    side.apply(u2, "i1", AS_OF - 10, "view", 1.0)

    def row(s: UserState, cluster: int) -> dict:
        g = sorted(s.genres.items())
        return {
            "n": s.n,
            "interest": None if s.interest is None else s.interest.tolist(),
            "t_ref": s.t_ref,
            "genre_names": [k for k, _ in g],
            "genre_counts": [c for _, c in g],
            "last_item": s.last_item,
            "last_t": s.last_t,
            "als": None if s.als is None else s.als.tolist(),
            "cluster": cluster,
        }

    neighbours = _neighbours(ids)
    matrix = ItemMatrix.build(side, events)
    view = BatchView(
        version=version,
        as_of_ms=AS_OF,
        item_ids=np.array(ids, dtype=object),
        item_events=np.array([events[i] for i in ids], dtype=np.int64),
        titles={i: f"title {i}" for i in ids},
        history={"u1": frozenset({"i0", "i4", "i8"}), "u2": frozenset({"i1"})},
        index={i: n for n, i in enumerate(ids)},
        side=side,
        profiles={"u1": row(u1, 0), "u2": row(u2, 1)},
        candidates={"u1": tuple(f"i{n}" for n in range(1, 30, 2)) + ("i0",)},
        popular_lists={"global": tuple(ids), "cluster:0": ("i39", "i38", "i37"), "cluster:1": ("i20", "i21")},
        centroids={
            0: vectors["i0"] / np.linalg.norm(vectors["i0"]),
            1: vectors["i1"] / np.linalg.norm(vectors["i1"]),
        },
        matrix=matrix,
        recent={"u1": ("i8", "i4", "i0"), "u2": ("i1",)},
        knn=NeighbourIndex.build(matrix.index, neighbours, dict.fromkeys(neighbours, (0.9, 0.5))),
    )
    ranker = load_ranker(model, version) if model is not None else None
    return ServedVersion(view, ranker)


@pytest.fixture(scope="module")
def model() -> bytes:
    return tiny_model()


def speed(**kw) -> SpeedRead:
    return SpeedRead(True, kw.pop("counts", {}), **kw)


def test_vectorized_features_equal_the_shared_feature_definitions():
    snap = world()
    view = snap.view
    recent = [Interaction("i5", "like", 1.0, AS_OF + 5), Interaction("i9", "watch", 90.0, AS_OF + 9)]
    for user in ("u1", "u2", "nobody"):
        state = online_state(view, user, recent)
        items = ["i3", "i5", "i17", "unknown-item", "i0"]
        counts = {"i3": 7, "unknown-item": 3}
        ref = feature_matrix(view, state, items, counts, NOW)
        rows = view.matrix.rows(items)
        fast = view.matrix.features(state, rows, view.matrix.counts[rows] + np.array([7, 0, 0, 3, 0]), NOW)
        np.testing.assert_allclose(fast, ref, rtol=1e-9, atol=1e-12)


def test_feed_is_ranked_by_the_model_on_online_features_and_skips_seen(model):
    snap = world(model=model)
    recent = (Interaction("i3", "like", 1.0, AS_OF + 100),)
    feed = rank_feed(snap, speed(recent=recent, counts={"i5": 4}), "u1", 10, NOW)
    ids = [i.item_id for i in feed.items]
    assert len(ids) == 10 and not {"i0", "i4", "i8", "i3"} & set(ids)
    assert feed.view_version == feed.model_version == "v000001" and not feed.degraded
    state = online_state(snap.view, "u1", recent)
    sp = speed(recent=recent, counts={"i5": 4})
    side = batch_side(snap, "u1", 10, FeedConfig())
    found = Retrieval.of(snap.view, sp.recent, sp.seen, side.recent, side.history_rows, FeedConfig().knn, NOW)
    rows = snap.view.matrix.rows(ids)
    live = np.array([4 if i == "i5" else 0 for i in ids])
    x = np.hstack(
        [
            feature_matrix(snap.view, state, ids, {"i5": 4}, NOW),  # the per-row reference
            np.log1p(live)[:, None],
            evidence_columns(found.evidence, rows, found.seen),
            evidence_columns(found.session, rows, found.seen)[:, :2],
            np.array([snap.view.side.als[i] @ U1_ALS if i in snap.view.side.als else 0.0 for i in ids])[
                :, None
            ],
            np.log1p((NOW - np.array([snap.view.side.first_ms[i] for i in ids])) / 86_400_000)[:, None],
        ]
    )
    assert found.evidence.score.any() and {"i0", "i3"} <= {snap.view.matrix.ids[r] for r in found.seen}
    expected = snap.ranker.predict(x)
    np.testing.assert_allclose([i.score for i in feed.items], expected, rtol=1e-6)
    assert feed.signal_age_ms == NOW - (AS_OF + 100)


def test_every_source_is_named_on_the_items_it_proposed(model):
    snap = world(model=model)
    fresh = FreshCandidates("v000001", "v000001", AS_OF + 50, (("i13", 0.9),))
    sp = speed(
        recent=(Interaction("i22", "view", 1.0, AS_OF + 10),),
        fresh=fresh,
        trending=(("i31", 5.0),),
        trending_end_ms=AS_OF + 60_000,
        movers=(("i33", 40),),
        counts={"i33": 40},
    )
    cfg = FeedConfig(genre_cap=1.0)
    feed = rank_feed(snap, sp, "u1", 60, NOW, cfg)
    by_id = {i.item_id: i for i in feed.items}
    assert SPEED_FRESH in by_id["i13"].sources
    assert RECENT_NEIGHBOURS in by_id["i23"].sources and RECENT_NEIGHBOURS in by_id["i24"].sources
    # why: the recent item whose list holds it with the highest similarity (i22 lists i23 and i24)
    assert by_id["i23"].because == by_id["i24"].because == "i22"
    ring = _neighbours(list(snap.view.item_ids))
    for item in feed.items:
        if RECENT_NEIGHBOURS not in item.sources:
            assert item.because is None
            continue
        strongest = max(
            (
                (sim, -k, j)
                for k, j in enumerate(("i22", "i8", "i4", "i0"))
                for near, sim in zip(ring[j], (0.9, 0.5), strict=True)
                if near == item.item_id
            ),
        )
        assert item.because == strongest[2], item
    assert TRENDING in by_id["i31"].sources
    assert SPEED_POPULAR in by_id["i33"].sources and by_id["i33"].speed_count == 40
    assert by_id["i33"].batch_count == 1000 - 330
    assert BATCH_CANDIDATES in by_id["i1"].sources
    assert CLUSTER_POPULAR in by_id["i39"].sources
    assert any(BATCH_POPULAR in i.sources for i in feed.items)
    assert feed.signal_age_ms == NOW - (AS_OF + 60_000)
    # the best items by ALS score that u1 has not seen, and nothing else, say batch_als
    view, seen = snap.view, {"i0", "i4", "i8", "i22"}
    by_als = sorted((i for i in view.side.als if i not in seen), key=lambda i: -(view.side.als[i] @ U1_ALS))
    best = [i for i in by_als if view.side.als[i] @ U1_ALS > 0][: cfg.als_candidates_n]
    assert len(best) == cfg.als_candidates_n
    assert {i.item_id for i in feed.items if BATCH_ALS in i.sources} == set(best)
    assert not any(BATCH_ALS in i.sources for i in rank_feed(snap, sp, "u2", 60, NOW, cfg).items)


def _reference_knn(view: BatchView, sp: SpeedRead, user: str, cfg: FeedConfig) -> list[str]:
    """Items by the decayed sum of their similarities to the newest knn_recent_n interactions
    (speed ones since the as-of newest first, then the batch's), one item at a time."""
    newer = sorted((i for i in sp.recent if i.event_time_ms >= view.as_of_ms), key=lambda i: -i.event_time_ms)
    seq = ([i.item_id for i in newer] + list(view.recent.get(user, ())))[: cfg.knn_recent_n]
    scores: dict[str, float] = {}
    for k, item in enumerate(seq):
        for near, sim in zip(_neighbours(list(view.item_ids)).get(item, ()), (0.9, 0.5), strict=False):
            scores[near] = scores.get(near, 0.0) + cfg.knn_decay**k * sim
    return sorted(scores, key=lambda i: (-scores[i], view.matrix.index[i]))


def _reference_pool(snap: ServedVersion, sp: SpeedRead, user: str, k: int, cfg: FeedConfig) -> dict:
    """The pool as first specified: every source over its whole list, one after the other."""
    view = snap.view
    state = online_state(view, user, sp.recent)
    seen = view.seen(user) | {i.item_id for i in sp.recent} | sp.seen
    pool: dict[str, list[str]] = {}

    def add(items, source: str, n: int) -> None:
        taken = 0
        for item in items:
            if taken >= n:
                return
            if item in seen:
                continue
            taken += 1
            if item not in pool:
                if len(pool) >= cfg.candidates_max:
                    continue
                pool[item] = []
            if source not in pool[item]:
                pool[item].append(source)

    if sp.fresh is not None:
        add([i for i, _ in sp.fresh.items], SPEED_FRESH, cfg.candidates_max)
    user_als = state.als
    if user_als is not None:  # every item with factors and a positive score, best first (ties: by id)
        scored = {i: float(f @ user_als) for i, f in view.side.als.items()}
        add(
            sorted((i for i in scored if scored[i] > 0), key=lambda i: (-scored[i], i)),
            BATCH_ALS,
            cfg.als_candidates_n,
        )
    add(_reference_knn(view, sp, user, cfg), RECENT_NEIGHBOURS, cfg.knn_candidates_n)
    add([i for i, _ in sp.trending], TRENDING, cfg.trending_n)
    add([i for i, _ in sp.movers], SPEED_POPULAR, cfg.trending_n)
    add(view.candidates.get(user, ()), BATCH_CANDIDATES, cfg.candidates_max)
    row = view.profiles.get(user)
    n = 2 * k if row is None or row["n"] < cfg.cold_start_events else k
    cluster = view.cluster_of(user, state)
    if cluster is not None:
        add(view.popular(f"cluster:{cluster}"), CLUSTER_POPULAR, n)
    add(view.popular(), BATCH_POPULAR, n)
    return pool


def test_the_cached_batch_side_gives_the_pool_the_whole_lists_give():
    """Cut lists, pre-merged batch proposals and the fallback when a recent item is among them
    give the same candidates, in the same order, with the same sources, as the whole lists."""
    snap = world()
    rng = np.random.default_rng(3)
    ids = [f"i{n}" for n in range(40)]
    for trial in range(300):
        cfg = FeedConfig(
            candidates_max=int(rng.integers(3, 45)),
            trending_n=int(rng.integers(1, 8)),
            knn_recent_n=int(rng.integers(0, 5)),
            knn_candidates_n=int(rng.integers(0, 6)),
            als_candidates_n=int(rng.integers(0, 12)),
            cold_start_events=int(rng.integers(0, 5)),
        )
        user, k = ["u1", "u2", "u3"][trial % 3], int(rng.integers(1, 15))
        recent = tuple(
            Interaction(str(i), "view", 1.0, AS_OF + int(t))
            for i, t in zip(rng.choice(ids, int(rng.integers(0, 6))), rng.integers(0, 1000, 6), strict=False)
        )
        sp = speed(
            recent=recent,
            fresh=FreshCandidates("v", "v", AS_OF, tuple((str(i), 0.5) for i in rng.choice(ids, 4))),
            trending=tuple((str(i), 1.0) for i in rng.choice(ids, 5, replace=False)),
            movers=tuple((str(i), 3) for i in rng.choice(ids, 5, replace=False)),
            seen=frozenset(str(i) for i in rng.choice(ids, int(rng.integers(0, 12)) * (trial % 2))),
        )
        side = batch_side(snap, user, k, cfg)
        state = online_state(snap.view, user, recent)
        got = candidate_pool(
            snap,
            sp,
            user,
            side,
            state,
            cfg,
            Retrieval.of(snap.view, sp.recent, sp.seen, side.recent, side.history_rows, cfg.knn, NOW),
        )
        assert got == _reference_pool(snap, sp, user, k, cfg), (trial, user, k, cfg)


def test_items_seen_since_the_as_of_are_never_proposed_nor_counted_among_the_knn_rivals(model):
    """The speed layer's seen set, beyond its last `recent` interactions: none of it is a
    candidate, and the kNN source and the knn_rank feature leave it out as they do the history."""
    snap = world(model=model)
    fresh = FreshCandidates("v000001", "v000001", AS_OF + 50, (("i13", 0.9), ("i15", 0.8)))
    sp = speed(
        recent=(Interaction("i22", "view", 1.0, AS_OF + 10),),
        fresh=fresh,
        trending=(("i31", 5.0), ("i32", 4.0)),
        movers=(("i33", 40), ("i34", 30)),
        counts={"i33": 40, "i34": 30},
    )
    cfg = FeedConfig(genre_cap=1.0)
    before = {i.item_id for i in rank_feed(snap, sp, "u1", 60, NOW, cfg).items}
    seen = frozenset({"i13", "i23", "i31", "i33", "i1", "i39", "i2"})  # one of each source
    assert seen <= before
    after = rank_feed(snap, replace(sp, seen=seen), "u1", 60, NOW, cfg)
    ids = {i.item_id for i in after.items}
    assert ids and not ids & (seen | {"i0", "i4", "i8", "i22"})
    assert {"i15", "i24", "i32", "i34"} <= ids  # the unseen items of the same sources stay
    side = batch_side(snap, "u1", 60, cfg)
    found = Retrieval.of(snap.view, sp.recent, seen, side.recent, side.history_rows, cfg.knn, NOW)
    assert seen <= {snap.view.matrix.ids[r] for r in found.seen}
    # more seen items than the cut batch lists allow for (the first 10 + RECENT_MARGIN the batch
    # history has not seen): the pool comes from the whole lists
    many = world(n_items=150)
    lots = speed(seen=frozenset(f"i{n}" for n in range(1, 110)))
    side = batch_side(many, "u1", 10, cfg)
    found = Retrieval.of(many.view, lots.recent, lots.seen, side.recent, side.history_rows, cfg.knn, NOW)
    pool = candidate_pool(many, lots, "u1", side, online_state(many.view, "u1", ()), cfg, found)
    assert pool == _reference_pool(many, lots, "u1", 10, cfg) and not set(pool) & lots.seen
    assert [i for i, by in pool.items() if BATCH_POPULAR in by] == [f"i{n}" for n in range(110, 120)]


def test_a_cold_start_user_gets_cluster_trending_and_popular_items(model):
    snap = world(model=model)
    # no batch profile; one recent interaction close to item i1 puts the user in cluster 1
    sp = speed(
        recent=(Interaction("i1", "like", 1.0, AS_OF + 10),), trending=(("i30", 3.0),), trending_end_ms=AS_OF
    )
    feed = rank_feed(snap, sp, "newcomer", 45, NOW, FeedConfig(genre_cap=1.0))
    sources = {s for i in feed.items for s in i.sources}
    assert feed.cold_start
    assert {CLUSTER_POPULAR, TRENDING, BATCH_POPULAR} <= sources
    assert "i20" in [i.item_id for i in feed.items if CLUSTER_POPULAR in i.sources]
    assert "i1" not in {i.item_id for i in feed.items}
    bare = rank_feed(snap, speed(), "stranger", 5, NOW)
    assert bare.cold_start and len(bare.items) == 5
    assert all(BATCH_POPULAR in i.sources for i in bare.items)


def test_without_redis_the_feed_is_batch_only_and_marked_degraded(model):
    snap = world(model=model)
    feed = rank_feed(snap, SpeedRead.unavailable(), "u1", 10, NOW)
    assert feed.degraded and feed.signal_age_ms is None and len(feed.items) == 10
    assert all(i.speed_count == 0 for i in feed.items)
    assert not {SPEED_FRESH, TRENDING, SPEED_POPULAR} & {s for i in feed.items for s in i.sources}
    # the neighbours of the batch's own newest interactions (i8, i4, i0) are still proposed
    near = {i.item_id for i in feed.items if RECENT_NEIGHBOURS in i.sources}
    assert near and near <= {"i9", "i10", "i5", "i6", "i1", "i2"}


def test_without_a_version_the_feed_comes_from_trending_and_speed_popularity():
    snap = ServedVersion.empty()
    sp = speed(
        trending=(("x1", 9.0),),
        trending_end_ms=AS_OF,
        movers=(("x2", 50), ("x3", 5)),
        counts={"x2": 50, "x3": 5},
    )
    feed = rank_feed(snap, sp, "anyone", 10, NOW)
    assert [i.item_id for i in feed.items] == ["x2", "x3", "x1"]
    assert feed.view_version is None and feed.model_version is None and feed.degraded
    assert known_candidates(snap, "anyone", 10, FeedConfig()) == []


def test_without_a_model_items_rank_by_merged_popularity():
    snap = world(model=None)
    feed = rank_feed(snap, speed(counts={"i39": 5000}, movers=(("i39", 5000),)), "u2", 3, NOW)
    assert feed.model_version is None
    assert feed.items[0].item_id == "i39" and feed.items[0].speed_count == 5000
    assert [i.score for i in feed.items] == sorted((i.score for i in feed.items), reverse=True)


def test_diversity_caps_each_primary_genre_and_fills_with_the_rest():
    order = list(range(6))
    genres = ["a", "a", "a", "b", None, "a"]
    assert diversify(order, genres, 4, 0.5) == [0, 1, 3, 4]
    assert diversify(order, ["a"] * 6, 4, 0.25) == [0, 1, 2, 3]  # nothing else: capped items fill
    assert diversify([], [], 3, 0.4) == []


def test_a_diverse_feed_holds_at_most_the_cap_of_one_genre(model):
    snap = world(model=model)
    feed = rank_feed(snap, speed(), "u1", 10, NOW, FeedConfig(genre_cap=0.3))
    per = {}
    for i in feed.items:
        per[i.genre] = per.get(i.genre, 0) + 1
    assert max(per.values()) <= 3 and len(feed.items) == 10


def test_the_ranker_scores_rows_in_one_run(model):
    r: Ranker = load_ranker(model, "v9")
    x = np.random.default_rng(2).normal(size=(5, len(FEATURE_NAMES)))
    p = r.predict(x)
    assert p.shape == (5,) and ((p > 0) & (p < 1)).all() and r.predict(np.zeros((0, 6))).shape == (0,)
