"""The feed: gather candidates from both views, rank them with the published model, keep the
feed diverse. Pure logic over plain data (`Snapshot`, `SpeedSnapshot`): an evaluation harness
calls `rank_feed` without any service.

Diversity is a cap per primary genre (`genre_cap` of the feed at most) applied greedily in score
order, with capped items filling any places left: unlike MMR it needs no pairwise similarities
(O(n) per request rather than O(k·n·d)), it never reorders items within a genre, and an operator
can state its effect in one sentence.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from lambdastack.features import UserState
from lambdastack.settings import ServingSettings
from serving.ranking import apply_since
from serving.snapshot import Snapshot
from serving.speed_view import SpeedSnapshot

SPEED_FRESH = "speed_fresh"  # the speed layer's fresh candidates for the user
RECENT_NEIGHBOURS = "recent_neighbours"  # neighbours of the user's recent interactions
BATCH_CANDIDATES = "batch_candidates"
TRENDING = "trending"
SPEED_POPULAR = "speed_popular"  # most engaged since the batch as-of
CLUSTER_POPULAR = "cluster_popular"
BATCH_POPULAR = "batch_popular"
SOURCES = (
    SPEED_FRESH,
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
    recent_neighbours_n: int = 5
    recent_items_n: int = 5  # newest interactions whose neighbours are candidates
    cold_start_events: int = 3
    genre_cap: float = 0.4

    @staticmethod
    def from_settings(s: ServingSettings) -> FeedConfig:
        return FeedConfig(
            s.candidates_max, s.trending_n, s.recent_neighbours_n, 5, s.cold_start_events, s.genre_cap
        )


@dataclass(frozen=True, slots=True)
class FeedItem:
    item_id: str
    score: float
    batch_count: int
    speed_count: int
    sources: tuple[str, ...]
    genre: str | None


@dataclass(frozen=True)
class Feed:
    user_id: str
    items: tuple[FeedItem, ...]
    view_version: str | None
    model_version: str | None
    variant: str
    as_of_ms: int
    degraded: bool
    cold_start: bool
    signal_age_ms: int | None
    candidates: int


class _Pool:
    """Candidates in the order they were found, each with the sources that proposed it. A source
    proposes the first `n` items of its list the user has not seen; once the pool holds `limit`
    items, a proposed item not in it yet is dropped (an item already in it still gets the source)."""

    def __init__(self, seen: frozenset[str], limit: int):
        self.seen, self.limit = seen, limit
        self.sources: dict[str, list[str]] = {}

    def add(self, items: Iterable[str], source: str, n: int) -> None:
        taken = 0
        for item in items:
            if taken >= n:
                return
            if item in self.seen:
                continue
            taken += 1
            srcs = self.sources.get(item)
            if srcs is None:
                if len(self.sources) >= self.limit:
                    continue
                self.sources[item] = srcs = []
            if source not in srcs:
                srcs.append(source)


def is_cold(snapshot: Snapshot, user_id: str, cfg: FeedConfig) -> bool:
    row = snapshot.view.profiles.get(user_id)
    return row is None or int(row["n"]) < cfg.cold_start_events


def known_candidates(snapshot: Snapshot, user_id: str, k: int, cfg: FeedConfig) -> list[str]:
    """The batch-side candidates known before reading Redis (their speed counts are read exactly)."""
    view = snapshot.view
    pool = _Pool(view.seen(user_id), cfg.candidates_max)
    _batch_sources(pool, snapshot, user_id, view.cluster_of(user_id, view.user_state(user_id)), k, cfg)
    return list(pool.sources)


def _batch_sources(
    pool: _Pool, snapshot: Snapshot, user_id: str, cluster: int | None, k: int, cfg: FeedConfig
) -> None:
    view = snapshot.view
    pool.add(view.candidates.get(user_id, ()), BATCH_CANDIDATES, cfg.candidates_max)
    n = 2 * k if is_cold(snapshot, user_id, cfg) else k
    if cluster is not None:
        pool.add(view.popular(f"cluster:{cluster}"), CLUSTER_POPULAR, n)
    pool.add(view.popular(), BATCH_POPULAR, n)


def _speed_sources(pool: _Pool, snapshot: Snapshot, speed: SpeedSnapshot, cfg: FeedConfig) -> None:
    if speed.fresh is not None:
        pool.add((i for i, _ in speed.fresh.items), SPEED_FRESH, cfg.candidates_max)
    newest = sorted(speed.recent, key=lambda i: -i.event_time_ms)[: cfg.recent_items_n]
    for interaction in newest:
        near = snapshot.view.neighbours.get(interaction.item_id, ())
        pool.add(near, RECENT_NEIGHBOURS, cfg.recent_neighbours_n)
    pool.add((i for i, _ in speed.trending), TRENDING, cfg.trending_n)
    pool.add((i for i, _ in speed.movers), SPEED_POPULAR, cfg.trending_n)


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


def _scores(snapshot: Snapshot, user_id: str, x: np.ndarray) -> tuple[str, str | None, np.ndarray]:
    variant, ranker = snapshot.ranker_for(user_id)
    if ranker is None:  # no model: rank by merged popularity (the item_pop feature)
        return variant, None, x[:, 0].copy()
    return variant, ranker.version, ranker.predict(x)


def rank_feed(
    snapshot: Snapshot, speed: SpeedSnapshot, user_id: str, k: int, now_ms: int, cfg: FeedConfig | None = None
) -> Feed:
    """Merge, rank, filter and diversify the user's feed from one snapshot of each view."""
    cfg = cfg or FeedConfig()
    view = snapshot.view
    state: UserState = apply_since(view.side, view.user_state(user_id), view.as_of_ms, speed.recent)
    seen = view.seen(user_id) | {i.item_id for i in speed.recent}
    pool = _Pool(seen, cfg.candidates_max)
    _speed_sources(pool, snapshot, speed, cfg)
    _batch_sources(pool, snapshot, user_id, view.cluster_of(user_id, state), k, cfg)
    items = list(pool.sources)
    rows = view.matrix.rows(items)
    batch_counts = view.matrix.counts[rows]
    speed_counts = np.fromiter((speed.counts.get(i, 0) for i in items), dtype=np.int64, count=len(items))
    x = view.matrix.features(state, rows, batch_counts + speed_counts, now_ms)
    variant, model_version, scores = _scores(snapshot, user_id, x)
    order = np.argsort(-scores, kind="stable").tolist()  # ties: the order the sources found them
    genres = [view.matrix.genre[r] for r in rows]
    chosen = diversify(order, [genres[n] for n in order], k, cfg.genre_cap)
    ranked = tuple(
        FeedItem(
            items[n],
            float(scores[n]),
            int(batch_counts[n]),
            int(speed_counts[n]),
            tuple(pool.sources[items[n]]),
            genres[n],
        )
        for n in chosen
    )
    newest = speed.newest_signal_ms()
    return Feed(
        user_id=user_id,
        items=ranked,
        view_version=view.version,
        model_version=model_version,
        variant=variant,
        as_of_ms=view.as_of_ms,
        degraded=not speed.ok or view.version is None,
        cold_start=is_cold(snapshot, user_id, cfg),
        signal_age_ms=None if newest is None else max(0, now_ms - newest),
        candidates=len(items),
    )
