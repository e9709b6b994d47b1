"""The four systems the replay compares, each a view of the same batch version and speed state:

- `popularity`: the version's global popular list (time-decayed engagement), nothing else;
- `batch_only`: the real feed (`serving.feed.rank_feed`) with an empty speed view;
- `speed_only`: the real feed over a batch view emptied of everything learned from the history
  but the catalogue, the item embeddings, their neighbour lists and the model (no counts, user
  profiles, histories, candidates or popular lists), with the speed state scored against that
  same emptied version;
- `merged`: the real feed over the version and the speed state, as the API serves it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lambdastack.item_matrix import ItemMatrix
from lambdastack.speedview import SpeedRead
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
class Variants:
    full: ServedVersion
    empty: ServedVersion  # catalogue_only(full.view), same model
    state: SpeedState
    cfg: FeedConfig
    k: int

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

    def queries(self) -> dict[str, Query]:
        return {
            POPULARITY: self.popularity,
            BATCH_ONLY: self.batch_only,
            SPEED_ONLY: self.speed_only,
            MERGED: self.merged,
        }
