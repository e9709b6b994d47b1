"""Ranking features of the user state: the sequential reference of STATE_FEATURES, which
lambdastack.item_matrix computes vectorised (tested equal) inside the one feature matrix that
the batch training set, the speed layer, the API and the evaluation call
(lambdastack.candidate_features, which also defines EVIDENCE_FEATURES).

Every feature of (user u, item i, instant t) depends only on events strictly before t:
- `item_pop`      log1p(events of i before t that the serving views hold: the batch count plus
                  the live count, lambdastack.candidate_features)
- `user_activity` log1p(events of u before t)
- `affinity`      cosine(u's interest vector, i's content vector); the interest vector is the
                  time-decayed (half-life HALF_LIFE_MS), engagement-weighted sum of the content
                  vectors of u's items
- `genre_affinity` mean over i's genres of the share of u's events in that genre
- `last_sim`      cosine(content vector of u's last item, i's content vector)
- `recency`       log1p(hours since u's last event)

Content vectors come from item text only (no interaction data), so using them at any t leaks
nothing from after t. A UserState is mergeable: the batch layer publishes it as of its as-of T,
and applying the events since T in time order gives exactly the state a full replay gives.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

# What `features` computes from the user state and the item side (this module is their reference).
STATE_FEATURES: tuple[str, ...] = (
    "item_pop",
    "user_activity",
    "affinity",
    "genre_affinity",
    "last_sim",
    "recency",
)
# What the live counts, the retrieval evidence and the batch's item facts add
# (lambdastack.candidate_features defines them).
EVIDENCE_FEATURES: tuple[str, ...] = (
    "live_pop",
    "knn_score",
    "knn_share",
    "knn_best",
    "knn_votes",
    "knn_last",
    "knn_rank",
    "session_score",
    "session_share",
    "als_score",
    "item_age",
)
# The ranking model's input, in this order (lambdastack.candidate_features.feature_matrix).
FEATURE_NAMES: tuple[str, ...] = STATE_FEATURES + EVIDENCE_FEATURES
HALF_LIFE_MS = 14 * 86_400_000
DECAY_PER_MS = math.log(2) / HALF_LIFE_MS
# How much an event says the user wants the item (negative: does not); the one definition, which
# the vectorised replays (event_weights) and the Spark jobs (batch/embeddings.py weight_col) follow.
TYPE_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"view": 1.0, "click": 1.0, "like": 2.0, "share": 3.0, "skip": -0.5}
)
OTHER_TYPE_WEIGHT = 1.0  # a type without a weight of its own
WATCH_CAP_S = 120.0  # watch: 1 + min(max(seconds, 0), WATCH_CAP_S) / WATCH_S_PER_UNIT
WATCH_S_PER_UNIT = 60.0
RATING_MIDPOINT = 2.5  # rating: value / RATING_MIDPOINT - 1 (positive above the midpoint)


def feature_row(
    values: Mapping[str, Any], prefix: str = "", allowed: frozenset[str] = frozenset()
) -> tuple[list[float] | None, list[str]]:
    """(row in FEATURE_NAMES order, []) of a mapping of feature values, or (None, errors): every
    missing, non-finite or unknown field named as `{prefix}{name}: reason`; `allowed` names other
    keys that may stand beside the features (e.g. an id)."""
    errors, row = [], []
    for name in FEATURE_NAMES:
        v = values.get(name)
        if v is None:
            errors.append(f"{prefix}{name}: is required")
        elif isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(float(v)):
            errors.append(f"{prefix}{name}: must be a finite number")
        else:
            row.append(float(v))
    extra = sorted(set(values) - set(FEATURE_NAMES) - allowed)
    errors += [f"{prefix}{name}: is not a feature of the model" for name in extra]
    return (None, errors) if errors else (row, [])


def event_weight(etype: str, value: float) -> float:
    """How much an event says the user wants the item (negative: does not)."""
    if etype == "watch":
        return 1.0 + min(max(value, 0.0), WATCH_CAP_S) / WATCH_S_PER_UNIT
    if etype == "rating":
        return value / RATING_MIDPOINT - 1.0
    return TYPE_WEIGHTS.get(etype, OTHER_TYPE_WEIGHT)


def event_weights(types: np.ndarray, values: np.ndarray) -> np.ndarray:
    """event_weight over arrays (the vectorised replays use it)."""
    out = np.full(len(types), OTHER_TYPE_WEIGHT)
    for etype, weight in TYPE_WEIGHTS.items():
        out[types == etype] = weight
    out = np.where(types == "watch", 1.0 + np.clip(values, 0.0, WATCH_CAP_S) / WATCH_S_PER_UNIT, out)
    return np.where(types == "rating", values / RATING_MIDPOINT - 1.0, out)


def is_positive(etype: str, value: float) -> bool:
    """The label of an interaction for the ranking model."""
    return event_weight(etype, value) > 0.0


def _cos(a: np.ndarray | None, b: np.ndarray | None) -> float:
    if a is None or b is None:
        return 0.0
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))


@dataclass
class UserState:
    """What the features need to know about a user's past: apply events in time order."""

    n: int = 0
    interest: np.ndarray | None = None  # decayed weighted sum of content vectors, as of t_ref
    t_ref: int = 0
    genres: dict[str, int] = field(default_factory=dict)
    last_item: str | None = None
    last_t: int | None = None
    als: np.ndarray | None = None  # the user's ALS factors in the batch version (no event moves them)

    def apply(
        self, item_id: str, t: int, weight: float, vector: np.ndarray | None, genres: Sequence[str]
    ) -> None:
        """Fold one event (at or after every event applied so far) into the state."""
        if vector is not None:
            if self.interest is None:
                self.interest = np.zeros_like(vector, dtype=np.float64)
            elif t > self.t_ref:
                self.interest = self.interest * math.exp(-DECAY_PER_MS * (t - self.t_ref))
            self.interest = self.interest + weight * vector.astype(np.float64)
            self.t_ref = max(self.t_ref, t)
        self.n += 1
        for g in genres:
            self.genres[g] = self.genres.get(g, 0) + 1
        self.last_item, self.last_t = item_id, t

    def copy(self) -> UserState:
        return UserState(
            self.n,
            None if self.interest is None else self.interest.copy(),
            self.t_ref,
            dict(self.genres),
            self.last_item,
            self.last_t,
            self.als,
        )


def features(
    state: UserState,
    item_vector: np.ndarray | None,
    item_genres: Sequence[str],
    item_count: int,
    t: int,
    last_vector: np.ndarray | None,
) -> list[float]:
    """The STATE_FEATURES row of (user with `state`, item, t)."""
    genre_aff = (
        sum(state.genres.get(g, 0) for g in item_genres) / (len(item_genres) * state.n)
        if item_genres and state.n
        else 0.0
    )
    hours = (t - state.last_t) / 3_600_000 if state.last_t is not None and t > state.last_t else 0.0
    return [
        math.log1p(max(item_count, 0)),
        math.log1p(state.n),
        _cos(state.interest, item_vector),
        genre_aff,
        _cos(last_vector, item_vector),
        math.log1p(hours),
    ]


@dataclass(frozen=True)
class ItemSide:
    """What the features need about items: content vectors and genres, and the version's ALS
    factors and first event time of the items that have them."""

    vectors: Mapping[str, np.ndarray]
    genres: Mapping[str, Sequence[str]]
    als: Mapping[str, np.ndarray] = field(default_factory=dict)
    first_ms: Mapping[str, int] = field(default_factory=dict)

    def vector(self, item_id: str | None) -> np.ndarray | None:
        return None if item_id is None else self.vectors.get(item_id)

    def apply(self, state: UserState, item_id: str, t: int, etype: str, value: float) -> None:
        state.apply(
            item_id, t, event_weight(etype, value), self.vectors.get(item_id), self.genres.get(item_id, ())
        )

    def row(self, state: UserState, item_id: str, item_count: int, t: int) -> list[float]:
        return features(
            state,
            self.vectors.get(item_id),
            self.genres.get(item_id, ()),
            item_count,
            t,
            self.vector(state.last_item),
        )


def state_from_row(row: Mapping[str, Any]) -> UserState:
    """The UserState a published profile row describes (the online side of the merge)."""
    interest = row.get("interest")
    return UserState(
        n=int(row["n"]),
        interest=None if interest is None else np.asarray(interest, dtype=np.float64),
        t_ref=int(row["t_ref"]),
        genres=dict(zip(row["genre_names"], (int(c) for c in row["genre_counts"]), strict=True)),
        last_item=row.get("last_item"),
        last_t=None if row.get("last_t") is None else int(row["last_t"]),
        als=None if row.get("als") is None else np.asarray(row["als"], dtype=np.float64),
    )
