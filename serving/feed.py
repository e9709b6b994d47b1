"""The feed: gather candidates from both views, rank them with the published model, keep the
feed diverse. Pure logic over plain data (`ServedVersion`, `SpeedRead`): an evaluation harness
calls `rank_feed` without any service.

Diversity is a cap per primary genre (`genre_cap` of the feed at most) applied greedily in score
order, with capped items filling any places left: unlike MMR it needs no pairwise similarities
(O(n) per request rather than O(k·n·d)), it never reorders items within a genre, and an operator
can state its effect in one sentence.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import repeat

import numpy as np

from lambdastack.candidate_features import feature_matrix
from lambdastack.features import UserState
from lambdastack.settings import ServingSettings
from lambdastack.speedview import SpeedRead
from serving.batch_view import BatchView
from serving.online_features import apply_since
from serving.pool import Pool
from serving.recent import KnnConfig, Retrieval
from serving.schemas import FeedItemOut, FeedOut
from serving.served_version import ServedVersion

SPEED_FRESH = "speed_fresh"  # the speed layer's fresh candidates for the user
BATCH_ALS = "batch_als"  # a user the batch knows: their best items by ALS score in the version
# the items most similar to the user's recent interactions: the decayed sum of similarities over
# the newest knn_recent_n (batch and speed), lambdastack.retrieval
RECENT_NEIGHBOURS = "recent_neighbours"
BATCH_CANDIDATES = "batch_candidates"
TRENDING = "trending"
SPEED_POPULAR = "speed_popular"  # most engaged since the batch as-of
CLUSTER_POPULAR = "cluster_popular"
BATCH_POPULAR = "batch_popular"
SOURCES = (
    SPEED_FRESH,
    BATCH_ALS,
    RECENT_NEIGHBOURS,
    BATCH_CANDIDATES,
    TRENDING,
    SPEED_POPULAR,
    CLUSTER_POPULAR,
    BATCH_POPULAR,
)


@dataclass(frozen=True)
class FeedConfig:
    candidates_max: int = 60
    trending_n: int = 20
    knn_recent_n: int = 20  # newest interactions whose neighbours' similarities are summed
    knn_decay: float = 0.9
    knn_candidates_n: int = 100
    knn_session_s: int = 1800
    als_candidates_n: int = 10
    cold_start_events: int = 3
    genre_cap: float = 0.4
    user_cache_max: int = 50_000  # users x k whose BatchSide a snapshot keeps

    @property
    def knn(self) -> KnnConfig:
        return KnnConfig(self.knn_recent_n, self.knn_decay, self.knn_session_s)

    @staticmethod
    def from_settings(s: ServingSettings) -> FeedConfig:
        return FeedConfig(
            s.candidates_max,
            s.trending_n,
            s.knn_recent_n,
            s.knn_decay,
            s.knn_candidates_n,
            s.knn_session_s,
            s.als_candidates_n,
            s.cold_start_events,
            s.genre_cap,
            s.user_cache_max,
        )


# A batch list is kept to its first n + RECENT_MARGIN items the batch history has not seen: taking
# the first n the user has not seen from it is exact as long as at most RECENT_MARGIN of them are
# among the speed layer's recent and seen items (more of them take the uncached path).
RECENT_MARGIN = 64


def _unseen(items: Iterable[str], history: frozenset[str], n: int) -> tuple[str, ...]:
    out: list[str] = []
    for item in items:
        if len(out) >= n:
            break
        if item not in history:
            out.append(item)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class BatchSide:
    """What one user's feed takes from a batch version for one k, worked out once per version: the
    batch state, the batch lists (unseen by the batch history, cut as RECENT_MARGIN says) and the
    candidates whose speed counts are read (`known`)."""

    history: frozenset[str]
    history_rows: np.ndarray  # the rows of `history` in the version's item matrix
    recent: tuple[str, ...]  # the items of the newest batch events, newest first
    state: UserState  # the batch state as of the as-of; copied before events are folded in
    cold: bool
    cluster: int | None  # the batch's cluster for the user (None: chosen from the live state)
    candidates: tuple[str, ...]
    cluster_popular: tuple[str, ...]  # of `cluster` when it is not None
    popular: tuple[str, ...]
    n_popular: int  # how many items each popular list proposes
    known: tuple[str, ...]
    # item -> the batch sources proposing it, in pool order, for the batch cluster (or no cluster);
    # exact while no recent interaction is among the items
    proposed: Mapping[str, tuple[str, ...]]
    als: tuple[str, ...] = ()  # the best unseen items by ALS score, cut as RECENT_MARGIN says


def is_cold(snapshot: ServedVersion, user_id: str, cfg: FeedConfig) -> bool:
    row = snapshot.view.profiles.get(user_id)
    return row is None or int(row["n"]) < cfg.cold_start_events


def batch_side(snapshot: ServedVersion, user_id: str, k: int, cfg: FeedConfig) -> BatchSide:
    """The user's BatchSide for k, from the snapshot's cache (filled on first use)."""
    cache = snapshot.batch_sides
    key = (user_id, k, cfg)
    side = cache.get(key)
    if side is None:
        side = _batch_side(snapshot, user_id, k, cfg)
        if len(cache) >= cfg.user_cache_max:
            del cache[next(iter(cache))]  # the oldest entry
        cache[key] = side
    return side


def _batch_side(snapshot: ServedVersion, user_id: str, k: int, cfg: FeedConfig) -> BatchSide:
    view = snapshot.view
    history = view.seen(user_id)
    state = view.user_state(user_id)
    row = view.profiles.get(user_id)
    cluster = int(row["cluster"]) if row is not None and row.get("cluster") is not None else None
    cold = is_cold(snapshot, user_id, cfg)
    n = 2 * k if cold else k
    matrix, history_rows = view.matrix, view.matrix.rows(list(history))
    als = matrix.als_best(
        state.als, cfg.als_candidates_n and cfg.als_candidates_n + RECENT_MARGIN, history_rows
    )
    side = BatchSide(
        history,
        history_rows,
        tuple(view.recent.get(user_id, ()))[: cfg.knn_recent_n],
        state,
        cold,
        cluster,
        _unseen(view.candidates.get(user_id, ()), history, cfg.candidates_max + RECENT_MARGIN),
        () if cluster is None else _unseen(view.popular(f"cluster:{cluster}"), history, n + RECENT_MARGIN),
        _unseen(view.popular(), history, n + RECENT_MARGIN),
        n,
        (),
        {},
        tuple(matrix.ids[r] for r in als.tolist()),
    )
    pool = Pool(history, frozenset(), cfg.candidates_max)
    _batch_sources(pool, snapshot, side, view.cluster_of(user_id, state), cfg)
    unlimited = Pool(history, frozenset(), 1 << 62)
    _batch_sources(unlimited, snapshot, side, cluster, cfg)
    proposed = {item: tuple(by) for item, by in unlimited.sources.items()}
    return replace(side, known=tuple(pool.sources), proposed=proposed)


def known_candidates(snapshot: ServedVersion, user_id: str, k: int, cfg: FeedConfig) -> list[str]:
    """The batch-side candidates known before reading Redis (their speed counts are read exactly)."""
    return list(batch_side(snapshot, user_id, k, cfg).known)


def _batch_sources(
    pool: Pool, snapshot: ServedVersion, side: BatchSide, cluster: int | None, cfg: FeedConfig
) -> None:
    """The batch lists in pool order; `cluster` is the user's (batch or nearest to the live state)."""
    pool.add(side.candidates, BATCH_CANDIDATES, cfg.candidates_max)
    if cluster is not None:
        own = cluster == side.cluster
        near = side.cluster_popular if own else snapshot.view.popular(f"cluster:{cluster}")
        pool.add(near, CLUSTER_POPULAR, side.n_popular)
    pool.add(side.popular, BATCH_POPULAR, side.n_popular)


def _speed_sources(
    pool: Pool, snapshot: ServedVersion, speed: SpeedRead, side: BatchSide, found: Retrieval, cfg: FeedConfig
) -> None:
    """The sources that read the speed view, in pool order, and the ALS one (the batch's, ahead of
    the neighbours so that they do not crowd it out)."""
    if speed.fresh is not None:
        pool.add((i for i, _ in speed.fresh.items), SPEED_FRESH, cfg.candidates_max)
    pool.add(side.als, BATCH_ALS, cfg.als_candidates_n)
    if cfg.knn_candidates_n and len(found.evidence.rows):
        # seen items never take a place: the best n of the rest (found.seen holds the pool's
        # history and recent items, as rows)
        best = found.evidence.best_first(cfg.knn_candidates_n, found.seen).tolist()
        pool.add_unseen(list(map(snapshot.view.matrix.ids.__getitem__, best)), RECENT_NEIGHBOURS)
    pool.add([i for i, _ in speed.trending], TRENDING, cfg.trending_n)
    pool.add([i for i, _ in speed.movers], SPEED_POPULAR, cfg.trending_n)


def _whole_lists(snapshot: ServedVersion, user_id: str, side: BatchSide, cfg: FeedConfig) -> BatchSide:
    view, everything = snapshot.view, 1 << 62
    return replace(
        side,
        candidates=_unseen(view.candidates.get(user_id, ()), side.history, everything),
        cluster_popular=_unseen(view.popular(f"cluster:{side.cluster}"), side.history, everything)
        if side.cluster is not None
        else (),
        popular=_unseen(view.popular(), side.history, everything),
    )


def diversify(order: Sequence[int], genres: Sequence[str | None], k: int, genre_cap: float) -> list[int]:
    """The first k of `order` (best first) with at most ceil(genre_cap * k) per primary genre
    (`genres`, aligned with `order`); capped items fill the places nothing else can."""
    cap = max(1, math.ceil(genre_cap * k))
    chosen: list[int] = []
    deferred: list[int] = []
    per_genre: dict[str, int] = {}
    for n, g in zip(order, genres, strict=True):
        if len(chosen) == k:
            break
        if g is not None and per_genre.get(g, 0) >= cap:
            deferred.append(n)
            continue
        if g is not None:
            per_genre[g] = per_genre.get(g, 0) + 1
        chosen.append(n)
    return chosen + deferred[: k - len(chosen)]


def _scores(snapshot: ServedVersion, user_id: str, x: np.ndarray) -> tuple[str, str | None, np.ndarray]:
    variant, ranker = snapshot.ranker_for(user_id)
    if ranker is None:  # no model: rank by merged popularity (the item_pop feature)
        return variant, None, x[:, 0].copy()
    return variant, ranker.version, ranker.predict(x)


def candidate_pool(
    snapshot: ServedVersion,
    speed: SpeedRead,
    user_id: str,
    side: BatchSide,
    state: UserState,
    cfg: FeedConfig,
    found: Retrieval,
) -> dict[str, list[str]]:
    """The candidates (in the order found) and the sources that proposed each: the speed sources,
    then the batch ones; nothing the user has seen; at most cfg.candidates_max."""
    recent = speed.seen.union(i.item_id for i in speed.recent)
    pool = Pool(side.history, recent, cfg.candidates_max)
    _speed_sources(pool, snapshot, speed, side, found, cfg)
    cluster = side.cluster if side.cluster is not None else snapshot.view.cluster_of(user_id, state)
    if cluster == side.cluster and recent.isdisjoint(side.proposed):
        pool.merge(side.proposed)
    else:
        if len(recent) > RECENT_MARGIN:  # the cut batch lists might run short: use whole ones
            side = _whole_lists(snapshot, user_id, side, cfg)
        _batch_sources(pool, snapshot, side, cluster, cfg)
    return pool.sources


def rank_feed(
    snapshot: ServedVersion,
    speed: SpeedRead,
    user_id: str,
    k: int,
    now_ms: int,
    cfg: FeedConfig | None = None,
) -> FeedOut:
    """Merge, rank, filter and diversify the user's feed from one snapshot of each view: the API's
    answer itself (scores unrounded: the API rounds them as it answers)."""
    cfg = cfg or FeedConfig()
    view = snapshot.view
    side = batch_side(snapshot, user_id, k, cfg)
    state: UserState = apply_since(view.side, side.state.copy(), view.as_of_ms, speed.recent)
    found = Retrieval.of(view, speed.recent, speed.seen, side.recent, side.history_rows, cfg.knn, now_ms)
    sources = candidate_pool(snapshot, speed, user_id, side, state, cfg, found)
    items = list(sources)
    matrix = view.matrix
    rows = matrix.rows(items)
    batch_counts = matrix.counts[rows]
    speed_counts = np.fromiter(map(speed.counts.get, items, repeat(0)), np.int64, len(items))
    x = feature_matrix(
        matrix,
        state,
        rows,
        batch_counts + speed_counts,
        speed_counts,
        found.evidence,
        found.seen,
        now_ms,
        found.session,
    )
    variant, model_version, scores = _scores(snapshot, user_id, x)
    ranked = _ranked(view, items, rows, sources, scores, batch_counts, speed_counts, k, cfg)
    _explain(ranked, found, matrix.rows)
    newest = speed.newest_signal_ms()
    return FeedOut(
        user_id=user_id,
        items=ranked,
        view_version=view.version,
        model_version=model_version,
        variant=variant,
        as_of_ms=view.as_of_ms,
        degraded=not speed.ok or view.version is None,
        cold_start=side.cold,
        signal_age_ms=None if newest is None else max(0, now_ms - newest),
        candidates=len(items),
    )


def _explain(
    ranked: Sequence[FeedItemOut], found: Retrieval, rows_of: Callable[[list[str]], np.ndarray]
) -> None:
    """Each item the user's recent neighbours proposed gets the recent item that led to it."""
    by_knn = [item for item in ranked if RECENT_NEIGHBOURS in item.sources]
    if by_knn:
        for item, because in zip(by_knn, found.because(rows_of([i.item_id for i in by_knn])), strict=True):
            item.because = because


def _ranked(
    view: BatchView,
    items: list[str],
    rows: np.ndarray,
    sources: Mapping[str, list[str]],
    scores: np.ndarray,
    batch_counts: np.ndarray,
    speed_counts: np.ndarray,
    k: int,
    cfg: FeedConfig,
) -> tuple[FeedItemOut, ...]:
    """The feed's k items: best score first (ties: the order the sources found them), diversified."""
    order = np.argsort(-scores, kind="stable").tolist()
    genre = view.matrix.genre
    genres = list(map(genre.__getitem__, rows.tolist()))
    chosen = diversify(order, list(map(genres.__getitem__, order)), k, cfg.genre_cap)
    # numpy scalars are slow one by one: plain lists for the few chosen
    score_l, batch_l, speed_l = scores.tolist(), batch_counts.tolist(), speed_counts.tolist()
    title = view.titles.get
    return tuple(
        FeedItemOut(
            items[n],
            title(items[n]),
            genres[n],
            score_l[n],
            batch_l[n] + speed_l[n],
            batch_l[n],
            speed_l[n],
            tuple(sources[items[n]]),
        )
        for n in chosen
    )
