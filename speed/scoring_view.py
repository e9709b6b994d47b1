"""What per-event scoring (speed.scoring) and the drift UDF need from one published batch version,
read through the core's reader (lambdastack.published).

Per-user views are held as Python rows, not in the API's columnar form (serving.columnar): every
scored event reads a profile and a history, and materialising them from Arrow columns per event
made scoring about 10% slower (ml-latest-small, best of repeats), where the API keeps what it
materialises per user for the version's lifetime. Rows cost load time and memory instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from lambdastack import candidate_features
from lambdastack.features import ItemSide, UserState, state_from_row
from lambdastack.item_matrix import ItemMatrix
from lambdastack.published import PROFILE_COLUMNS, PublishedVersion
from lambdastack.retrieval import NeighbourIndex

Score = Callable[[np.ndarray], np.ndarray]  # feature rows (FEATURE_NAMES order) -> P(positive)


@dataclass(frozen=True)
class ScoringView:
    """One version's item side, counts, neighbours, profiles, histories and model, and the kNN
    evidence parameters its model was trained with."""

    version: str
    as_of_ms: int
    side: ItemSide
    counts: Mapping[str, int]
    neighbours: Mapping[str, tuple[str, ...]]
    profiles: Mapping[str, Mapping[str, Any]] = field(repr=False)
    history: Mapping[str, frozenset[str]] = field(repr=False)
    ranker: Score | None = field(default=None, repr=False)
    neighbour_scores: Mapping[str, tuple[float, ...]] = field(default_factory=dict, repr=False)
    recent: Mapping[str, tuple[str, ...]] = field(default_factory=dict, repr=False)  # newest first
    knn_recent_n: int = 20
    knn_decay: float = 0.9
    knn_session_s: int = 1800

    @cached_property
    def _vectors(self) -> tuple[dict[str, int], np.ndarray, np.ndarray]:
        """Item -> row of a content matrix (last row: zeros, for items without a vector), and norms."""
        index = {item: n for n, item in enumerate(self.side.vectors)}
        dim = len(next(iter(self.side.vectors.values()))) if index else 0
        matrix = np.vstack([*self.side.vectors.values(), np.zeros(dim)]).astype(np.float64)
        return index, matrix, np.linalg.norm(matrix, axis=1)

    @cached_property
    def matrix(self) -> ItemMatrix:
        """The item-side arrays of the vectorised features (built on first use)."""
        return ItemMatrix.build(self.side, self.counts)

    @cached_property
    def knn(self) -> NeighbourIndex:
        """The neighbour lists over the matrix's rows (built on first use)."""
        return NeighbourIndex.build(self.matrix.index, self.neighbours, self.neighbour_scores)

    def vector_rows(self, items: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Content vectors of the items (zeros without one), their norms, and which have one."""
        index, matrix, norms = self._vectors
        unknown = len(matrix) - 1
        rows = np.fromiter((index.get(i, unknown) for i in items), dtype=np.int64, count=len(items))
        return matrix[rows], norms[rows], rows != unknown

    def user_state(self, user_id: str) -> UserState:
        """The user's feature state as of the as-of (empty for a user the batch has not seen)."""
        row = self.profiles.get(user_id)
        return UserState() if row is None else state_from_row(row)


def load(published: PublishedVersion) -> ScoringView:
    """Read one complete version (raises NoVersionError if it is not there)."""
    as_of_ms = published.as_of_ms  # the manifest first: a version without one is not there
    ranker = published.ranker()
    candidate_features.warm()
    history = published.user_lists("user_history")
    users, items = (
        ([], []) if history is None else (history["user_id"].to_pylist(), history["items"].to_pylist())
    )
    recent = published.recent_lists()
    users_r, items_r = (
        ([], []) if recent is None else (recent["user_id"].to_pylist(), recent["items"].to_pylist())
    )
    # the model's kNN features are defined by what it was trained with (batch.job writes it)
    retrieval = published.manifest.get("model", {}).get("retrieval", {})
    return ScoringView(
        version=published.version,
        as_of_ms=as_of_ms,
        side=published.item_side(),
        counts=published.item_counts(),
        neighbours=published.neighbours(),
        profiles={r["user_id"]: r for r in published.rows("user_profiles", PROFILE_COLUMNS)},
        history={u: frozenset(v or ()) for u, v in zip(users, items, strict=True)},
        ranker=None if ranker is None else ranker.predict,
        neighbour_scores=published.neighbour_scores(),
        recent={u: tuple(v or ()) for u, v in zip(users_r, items_r, strict=True)},
        knn_recent_n=int(retrieval.get("recent_n", ScoringView.knn_recent_n)),
        knn_decay=float(retrieval.get("decay", ScoringView.knn_decay)),
        knn_session_s=int(retrieval.get("session_s", ScoringView.knn_session_s)),
    )
