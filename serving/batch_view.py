"""The views of a published batch version as the API holds them, in columnar form (serving.columnar),
read once per version through lambdastack.published."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lambdastack.features import ItemSide, UserState, state_from_row
from lambdastack.item_matrix import ItemMatrix
from lambdastack.published import PublishedVersion
from lambdastack.retrieval import NeighbourIndex
from serving.columnar import ItemLists, ItemSets, Rows

GLOBAL_SCOPE = "global"
# the profile columns the API reads beyond lambdastack.published.PROFILE_COLUMNS
PROFILE_EXTRA = ("cluster", "top_genres", "top_tags", "first_t", "active_days", "distinct_items")


@dataclass(frozen=True)
class BatchView:
    version: str | None
    as_of_ms: int
    item_ids: np.ndarray  # object array of str, most engaged first
    item_events: np.ndarray  # int64, aligned with item_ids
    titles: dict[str, str]
    history: Mapping[str, frozenset[str]]  # per user: serving.columnar.ItemSets once loaded
    index: dict[str, int] = field(repr=False)
    side: ItemSide = field(default_factory=lambda: ItemSide({}, {}), repr=False)
    profiles: Mapping[str, dict[str, Any]] = field(default_factory=dict, repr=False)  # columnar.Rows
    candidates: Mapping[str, tuple[str, ...]] = field(default_factory=dict, repr=False)  # columnar
    popular_lists: Mapping[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    centroids: Mapping[int, np.ndarray] = field(default_factory=dict, repr=False)  # unit interest
    matrix: ItemMatrix = field(default_factory=lambda: ItemMatrix.build(ItemSide({}, {}), {}), repr=False)
    # per user: the items of the newest events before the as-of, newest first (columnar)
    recent: Mapping[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    # the neighbour lists with their similarities over `matrix`'s rows
    knn: NeighbourIndex = field(default_factory=lambda: NeighbourIndex.build({}, {}, {}), repr=False)
    manifest: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @staticmethod
    def empty() -> BatchView:
        return BatchView(None, 0, np.array([], dtype=object), np.array([], dtype=np.int64), {}, {}, {})

    @functools.cached_property
    def user_ids(self) -> tuple[str, ...]:
        """The users the version knows (its profiles), in a fixed order, listed once when first
        asked for (GET /v1/users/sample draws from it)."""
        return tuple(self.profiles)

    def count(self, item_id: str) -> int:
        i = self.index.get(item_id)
        return int(self.item_events[i]) if i is not None else 0

    def counts(self, item_ids: list[str]) -> np.ndarray:
        return np.fromiter((self.count(i) for i in item_ids), dtype=np.int64, count=len(item_ids))

    def popular(self, scope: str = GLOBAL_SCOPE) -> tuple[str, ...]:
        """The scope's items by decayed engagement ('global' or 'cluster:K'; none if unknown)."""
        return self.popular_lists.get(scope, ())

    def seen(self, user_id: str) -> frozenset[str]:
        return self.history.get(user_id, frozenset())

    def user_state(self, user_id: str) -> UserState:
        """The user's feature state as of the as-of (empty for a user the batch has not seen)."""
        row = self.profiles.get(user_id)
        return UserState() if row is None else state_from_row(row)

    def cluster_of(self, user_id: str, state: UserState) -> int | None:
        """The user's batch cluster, else the one whose mean interest is nearest to the state's."""
        row = self.profiles.get(user_id)
        if row is not None and row.get("cluster") is not None:
            return int(row["cluster"])
        if state.interest is None or not self.centroids:
            return None
        norm = float(np.linalg.norm(state.interest))
        if norm == 0.0:
            return None
        sims = {c: float(v @ state.interest) / norm for c, v in self.centroids.items()}
        return max(sorted(sims), key=lambda c: sims[c])


def _profiles(table: pa.Table | None) -> Mapping[str, dict[str, Any]]:
    return {} if table is None else Rows(table, "user_id")


def _centroids(table: pa.Table | None) -> dict[int, np.ndarray]:
    """Mean unit interest per batch cluster, summed in row order."""
    if table is None or "cluster" not in table.column_names or "interest" not in table.column_names:
        return {}
    sums: dict[int, np.ndarray] = {}
    for cluster, interest in zip(table["cluster"].to_pylist(), table["interest"].to_pylist(), strict=True):
        if cluster is None or interest is None:
            continue
        v = np.asarray(interest, dtype=np.float64)
        n = float(np.linalg.norm(v))
        if n > 0:
            c = int(cluster)
            sums[c] = sums.get(c, np.zeros_like(v)) + v / n
    return {c: v / (float(np.linalg.norm(v)) or 1.0) for c, v in sums.items()}


def _per_user_lists(tables: Mapping[str, pa.Table | None], vocabulary: np.ndarray) -> dict[str, ItemLists]:
    return {
        view: ItemLists([str(u) for u in t["user_id"].to_pylist()], t["items"], vocabulary)
        if t is not None
        else ItemLists([], pa.array([], type=pa.list_(pa.string())), vocabulary)
        for view, t in tables.items()
    }


def _vocabulary(*tables: pa.Table | None) -> np.ndarray:
    """Every item id the per-user lists name, once."""
    values = [t["items"].combine_chunks().flatten().cast(pa.string()) for t in tables if t is not None]
    if not values:
        return np.asarray([], dtype=object)
    unique = pc.unique(pa.chunked_array(values, type=pa.string()))
    return np.asarray(unique.to_pylist(), dtype=object)


def _popular(published: PublishedVersion, by_events: np.ndarray) -> dict[str, tuple[str, ...]]:
    """The popular lists; a version without a global one ranks all items by their event count."""
    lists = published.popular()
    lists.setdefault(GLOBAL_SCOPE, tuple(str(i) for i in by_events))
    return lists


def load(published: PublishedVersion) -> BatchView:
    """One complete version's views (per-user ones in columnar form, serving.columnar)."""
    manifest = published.manifest
    stats = published.item_stats()
    order = np.argsort(-stats["events"].to_numpy(), kind="stable")
    ids = np.asarray(stats["item_id"].to_numpy(zero_copy_only=False), dtype=object)[order]
    events = stats["events"].to_numpy()[order].astype(np.int64)
    per_user = {view: published.user_lists(view) for view in ("user_history", "candidates")}
    per_user["recent"] = published.recent_lists()
    lists = _per_user_lists(per_user, _vocabulary(*per_user.values()))
    side = published.item_side()
    profile_table = published.profile_table(PROFILE_EXTRA)
    matrix = ItemMatrix.build(side, {str(i): int(n) for i, n in zip(ids, events, strict=True)})
    return BatchView(
        version=published.version,
        as_of_ms=published.as_of_ms,
        item_ids=ids,
        item_events=events,
        titles=published.titles(),
        history=ItemSets(lists["user_history"]),
        index={str(i): n for n, i in enumerate(ids)},
        side=side,
        profiles=_profiles(profile_table),
        candidates=lists["candidates"],
        popular_lists=_popular(published, ids),
        centroids=_centroids(profile_table),
        matrix=matrix,
        manifest=manifest,
        recent=lists["recent"],
        knn=NeighbourIndex.build(matrix.index, published.neighbours(), published.neighbour_scores()),
    )
