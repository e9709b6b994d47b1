"""Item-side arrays of one batch version, built once, so that the features of many candidates for
one user are a few numpy operations: the vectorised form of lambdastack.features (a unit test
keeps them equal row by row). Used unchanged by the serving layer's ranking, the speed layer's
per-event scoring and the evaluation harness.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat

import numpy as np

from lambdastack.feature_kernels import state_columns
from lambdastack.features import ItemSide, UserState
from lambdastack.retrieval import top_scored


def _unit(v: np.ndarray | None) -> np.ndarray | None:
    if v is None:
        return None
    n = math.sqrt(float(v @ v))
    return None if n == 0.0 else v / n


@dataclass(frozen=True)
class ItemMatrix:
    """Item-side arrays of one version; row `len(ids)` is the all-zero row of an unknown item."""

    index: Mapping[str, int]
    unit: np.ndarray  # (items + 1, dim) content vectors scaled to length 1 (zero: no vector)
    genre_share: np.ndarray  # (items + 1, genres) 1/len(genres) per genre occurrence
    genre_index: Mapping[str, int]
    counts: np.ndarray  # (items + 1,) batch events per item (0: unknown)
    genre: tuple[str | None, ...]  # (items + 1,) primary (first) genre per item
    ids: tuple[str, ...] = ()  # (items,) the item id of each row
    als: np.ndarray = field(default_factory=lambda: np.zeros((1, 0)))  # (items + 1, rank), 0: none
    first_ms: np.ndarray = field(default_factory=lambda: np.full(1, -1))  # (items + 1,) -1: unknown

    @staticmethod
    def build(side: ItemSide, item_counts: Mapping[str, int]) -> ItemMatrix:
        ids = sorted(set(item_counts) | set(side.vectors) | set(side.genres))
        dim = len(next(iter(side.vectors.values()))) if side.vectors else 0
        genre_index = {g: n for n, g in enumerate(sorted({g for gs in side.genres.values() for g in gs}))}
        unit = np.zeros((len(ids) + 1, dim))
        share = np.zeros((len(ids) + 1, len(genre_index)))
        for n, item in enumerate(ids):
            u = _unit(side.vectors.get(item))
            if u is not None:
                unit[n] = u
            gs = side.genres.get(item, ())
            for g in gs:
                share[n, genre_index[g]] += 1.0 / len(gs)
        counts = np.asarray([item_counts.get(i, 0) for i in ids] + [0], dtype=np.int64)
        primary = tuple(next(iter(side.genres.get(i, ())), None) for i in ids) + (None,)
        index = {i: n for n, i in enumerate(ids)}
        rank = len(next(iter(side.als.values()))) if side.als else 0
        als = np.zeros((len(ids) + 1, rank))
        for item, f in side.als.items():
            if (r := index.get(item)) is not None:
                als[r] = f
        first = np.asarray([side.first_ms.get(i, -1) for i in ids] + [-1], dtype=np.int64)
        return ItemMatrix(index, unit, share, genre_index, counts, primary, tuple(ids), als, first)

    def als_best(self, user: np.ndarray | None, n: int, exclude: np.ndarray) -> np.ndarray:
        """The rows of the n items with the highest positive ALS score, none of `exclude` (the
        `batch_als` source, in the feed and in the training pools); none without user factors."""
        if user is None or not n or self.als.shape[1] != len(user):
            return np.zeros(0, dtype=np.int64)
        return top_scored(self.als[: len(self.ids)] @ user, n, exclude)

    def rows(self, item_ids: Sequence[str]) -> np.ndarray:
        # map over dict.get runs in C: no Python frame per id
        unknown = repeat(len(self.unit) - 1)
        return np.fromiter(map(self.index.get, item_ids, unknown), np.int64, len(item_ids))

    def features(self, state: UserState, rows: np.ndarray, counts: np.ndarray, t: int) -> np.ndarray:
        """The STATE_FEATURES matrix of (user with `state`, each item row, t), equal to
        lambdastack.features.features row by row up to float rounding (one compiled pass:
        lambdastack.feature_kernels)."""
        none = np.zeros(0)
        interest = _unit(state.interest)
        genres = none
        if state.n and self.genre_share.shape[1]:
            genres = np.zeros(self.genre_share.shape[1])
            for g, c in state.genres.items():
                if (n := self.genre_index.get(g)) is not None:
                    genres[n] = c / state.n
        last = self.index.get(state.last_item, -1) if state.last_item is not None else -1
        hours = (t - state.last_t) / 3_600_000 if state.last_t is not None and t > state.last_t else 0.0
        return state_columns(
            self.unit,
            self.genre_share,
            np.asarray(rows, dtype=np.int64),
            np.asarray(counts, dtype=np.float64),
            none if interest is None else np.asarray(interest, dtype=np.float64),
            genres,
            last,
            math.log1p(state.n),
            math.log1p(hours),
        )
