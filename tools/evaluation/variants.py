"""The four systems the replay compares, each a view of the same batch version and speed state:

- `popularity`: the version's global popular list (time-decayed engagement), nothing else;
- `batch_only`: the real feed (`serving.feed.rank_feed`) with an empty speed view;
- `speed_only`: the real feed over a batch view emptied of everything learned from the history
  but the catalogue, the item embeddings, their neighbour lists and the model (no counts, user
  profiles, histories, candidates or popular lists), with the speed state scored against that
  same emptied version;
- `merged`: the real feed over the version and the speed state, as the API serves it.

`switch` moves all four to another version mid-replay, as the hot swap of serving and of the speed
layer does (tools.evaluation.retrains).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from lambdastack.item_matrix import ItemMatrix
from lambdastack.published import PublishedVersion
from lambdastack.settings import Settings
from lambdastack.speedview import SpeedRead
from lambdastack.versions import VersionLayout
from serving.batch_view import BatchView
from serving.feed import FeedConfig, known_candidates, rank_feed
from serving.served_version import ServedVersion
from speed.scoring_view import ScoringView
from tools.evaluation.speedstate import SpeedState

POPULARITY, BATCH_ONLY, SPEED_ONLY, MERGED = "popularity", "batch_only", "speed_only", "merged"
VARIANTS = (POPULARITY, BATCH_ONLY, SPEED_ONLY, MERGED)
Ranked = list[tuple[str, float, tuple[str, ...]]]  # items best first: (id, score, sources)
Query = Callable[[str, int], Ranked]  # (user, now_ms) -> the feed


def catalogue_only(view: BatchView) -> BatchView:
    """The view without anything learned from interactions except embeddings and neighbours."""
    return dataclasses.replace(
        view,
        item_events=np.zeros_like(view.item_events),
        history={},
        profiles={},
        candidates={},
        popular_lists={},
        centroids={},
        recent={},
        # the same rows (the neighbour index is over them), every count zero
        matrix=ItemMatrix.build(view.side, dict.fromkeys(view.matrix.index, 0)),
    )


def catalogue_scorer(view: ScoringView) -> ScoringView:
    """The speed layer's scoring view emptied the same way."""
    return dataclasses.replace(view, counts={}, profiles={}, history={})


@dataclass(frozen=True)
class Loaded:
    """What one published version gives the replay: the served version (views and model), the
    speed layer's scoring view and the item rates its trending is ranked against."""

    served: ServedVersion
    scorer: ScoringView
    rates_per_hour: Mapping[str, float]

    def scorers(self) -> dict[str, ScoringView]:
        """The speed state's scorers: `merged`'s is the version's, `speed_only`'s the emptied one."""
        return {MERGED: self.scorer, SPEED_ONLY: catalogue_scorer(self.scorer)}


def load_version(settings: Settings, version: str) -> Loaded:
    """Read a published version of `settings`' views dir as serving and the speed layer read it."""
    from serving import served_version
    from speed import baseline, scoring_view

    published = PublishedVersion(VersionLayout(settings.path(settings.data.views_dir)), version)
    served = served_version.load(published, settings.serving.ab)
    return Loaded(served, scoring_view.load(published), baseline.load(published).rates_per_hour)


@dataclass(frozen=True)
class Variants:
    full: ServedVersion
    empty: ServedVersion  # catalogue_only(full.view), same model
    state: SpeedState
    cfg: FeedConfig
    k: int

    @staticmethod
    def over(loaded: Loaded, state: SpeedState, cfg: FeedConfig, k: int) -> Variants:
        """The four variants over a loaded version and a speed state scored against it."""
        empty = ServedVersion(catalogue_only(loaded.served.view), loaded.served.ranker)
        return Variants(loaded.served, empty, state, cfg, k)

    def _feed(self, snap: ServedVersion, speed: SpeedRead, user: str, now_ms: int) -> Ranked:
        feed = rank_feed(snap, speed, user, self.k, now_ms, self.cfg)
        return [(i.item_id, i.score, i.sources) for i in feed.items]

    def _live(self, snap: ServedVersion, fresh_from: str, user: str, now_ms: int) -> Ranked:
        known = known_candidates(snap, user, self.k, self.cfg)
        speed = self.state.read_feed(user, snap.view.as_of_ms, now_ms, known, fresh_from)
        return self._feed(snap, speed, user, now_ms)

    def popularity(self, user: str, now_ms: int) -> Ranked:
        return [(i, -float(n), ("batch_popular",)) for n, i in enumerate(self.full.view.popular())]

    def batch_only(self, user: str, now_ms: int) -> Ranked:
        return self._feed(self.full, SpeedRead(True, {}), user, now_ms)

    def speed_only(self, user: str, now_ms: int) -> Ranked:
        return self._live(self.empty, SPEED_ONLY, user, now_ms)

    def merged(self, user: str, now_ms: int) -> Ranked:
        return self._live(self.full, MERGED, user, now_ms)

    @property
    def version(self) -> str:
        """The id of the batch version every variant answers from."""
        return str(self.full.version)

    def queries(self) -> dict[str, Query]:
        return {
            POPULARITY: self.popularity,
            BATCH_ONLY: self.batch_only,
            SPEED_ONLY: self.speed_only,
            MERGED: self.merged,
        }


def switch(variants: Variants, loaded: Loaded) -> Variants:
    """The variants moved to another version, as serving and the speed layer hot-swap when CURRENT
    moves: every variant's served version replaced whole (the new as-of included: the feed merges
    speed counts at or after it), and the same speed state, whose writes so far stay (they are in
    Redis), told to score later events and rank trending with the new version and to keep the live
    total since its as-of, started as the loader starts it."""
    variants.state.follow(loaded.scorers(), loaded.rates_per_hour, loaded.served.view.as_of_ms)
    return Variants.over(loaded, variants.state, variants.cfg, variants.k)
