"""The one reader of a published batch version: what its directory holds, read with pyarrow.

lambdastack.versions gives the layout, batch/job.py what a version holds. Each layer builds its
own in-memory shape from this reader (serving.batch_view, speed.scoring_view, speed.baseline);
none of them opens a version's files itself. Per-user views come back as Arrow tables, so a
layer can hold them columnar (serving.columnar) or as rows (speed.scoring_view).

A view or column a version lacks (older versions lack some) reads as absent (None) or empty,
except `item_stats`, which every version has.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lambdastack import feature_baseline
from lambdastack.features import ItemSide
from lambdastack.model import Ranker, load_ranker
from lambdastack.versions import VersionLayout

# the user_profiles columns lambdastack.features.state_from_row reads
PROFILE_COLUMNS = (
    "user_id",
    "n",
    "interest",
    "t_ref",
    "genre_names",
    "genre_counts",
    "last_item",
    "last_t",
    "als",
)


class PublishedVersion:
    """Reads one complete version's views, model and feature baseline, each when asked."""

    def __init__(self, layout: VersionLayout, version: str):
        self.layout, self.version = layout, version

    @cached_property
    def manifest(self) -> dict[str, Any]:
        """The version's manifest (raises NoVersionError if the version is not there)."""
        return self.layout.manifest(self.version)

    @property
    def as_of_ms(self) -> int:
        return int(self.manifest["as_of_ms"])

    def table(self, view: str, columns: Sequence[str]) -> pa.Table | None:
        """The columns of a view that it has; None if the view is absent."""
        path = self.layout.view_dir(self.version, view)
        if not path.exists():
            return None
        present = set(pq.ParquetDataset(path).schema.names)
        return pq.read_table(path, columns=[c for c in columns if c in present])

    def rows(self, view: str, columns: Sequence[str]) -> list[dict[str, Any]]:
        """A (small) view as rows; none if absent."""
        table = self.table(view, columns)
        return [] if table is None else table.to_pylist()

    def item_stats(self) -> pa.Table:
        """item_id and events (all-time count) of every item, in the view's order."""
        return pq.read_table(self.layout.view_dir(self.version, "item_stats"), columns=["item_id", "events"])

    def item_counts(self) -> dict[str, int]:
        """item_id -> all-time event count, in the view's order."""
        stats = self.item_stats()
        return dict(zip(stats["item_id"].to_pylist(), stats["events"].to_pylist(), strict=True))

    def item_side(self) -> ItemSide:
        """The content vectors and ALS factors (item_embeddings), genres (items) and first event
        times (item_stats) the features use."""
        emb = self.rows("item_embeddings", ["item_id", "content", "als"])
        vectors = {r["item_id"]: np.asarray(r["content"], dtype=np.float64) for r in emb}
        als = {r["item_id"]: np.asarray(r["als"], dtype=np.float64) for r in emb if r.get("als") is not None}
        meta = self.rows("items", ["item_id", "genres"])
        first = self.rows("item_stats", ["item_id", "first_event_ms"])
        first_ms = {r["item_id"]: int(t) for r in first if (t := r.get("first_event_ms")) is not None}
        genres = {r["item_id"]: list(r["genres"] or []) for r in meta}
        return ItemSide(vectors, genres, als, first_ms)

    def titles(self) -> dict[str, str]:
        return {r["item_id"]: r["title"] for r in self.rows("items", ["item_id", "title"]) if r.get("title")}

    def lists(self, view: str, key: str, items: str) -> dict[Any, tuple[str, ...]]:
        """key -> its list of item ids, for a small view (neighbours, popular)."""
        return {r[key]: tuple(r[items] or ()) for r in self.rows(view, [key, items])}

    def neighbours(self) -> dict[str, tuple[str, ...]]:
        """item -> its neighbours (batch/neighbours.py: co-visitation, else content), best first."""
        return self.lists("item_neighbours", "item_id", "neighbours")

    def neighbour_scores(self) -> dict[str, tuple[float, ...]]:
        """item -> the scores of its neighbours, aligned with `neighbours()` (a sparse item-item
        matrix: co-visitation scores, or content cosines where the view's `kind` is 'content')."""
        rows = self.rows("item_neighbours", ["item_id", "scores"])
        return {r["item_id"]: tuple(r.get("scores") or ()) for r in rows}

    def popular(self) -> dict[str, tuple[str, ...]]:
        """scope ('global', 'cluster:K') -> items by decayed engagement."""
        return self.lists("popular", "scope", "items")

    def profile_table(self, extra: Sequence[str] = ()) -> pa.Table | None:
        """user_profiles: PROFILE_COLUMNS plus those of `extra` the version has."""
        return self.table("user_profiles", [*PROFILE_COLUMNS, *extra])

    def user_lists(self, view: str) -> pa.Table | None:
        """A per-user list view (user_history, candidates): user_id and its `items`."""
        return self.table(view, ["user_id", "items"])

    def recent_lists(self) -> pa.Table | None:
        """user_id and `items`: the items of each user's newest events before the as-of, newest
        first (user_history `recent`; None for a version published without it)."""
        table = self.table("user_history", ["user_id", "recent"])
        if table is None or "recent" not in table.column_names:
            return None
        return table.rename_columns(["user_id", "items"])

    def model(self) -> bytes | None:
        """The ONNX ranking model, None if the version has none."""
        path = self.layout.model_file(self.version)
        return path.read_bytes() if path.is_file() else None

    def ranker(self) -> Ranker | None:
        """The ranking model in onnxruntime (lambdastack.model), None if the version has none."""
        model = self.model()
        return None if model is None else load_ranker(model, self.version)

    def feature_baseline(self) -> dict[str, Any]:
        """Per-feature bin edges and proportions (lambdastack.feature_baseline): the manifest's
        `feature_baseline`, else the version's feature_baseline.json, else none."""
        if isinstance(self.manifest.get("feature_baseline"), dict):
            return dict(self.manifest["feature_baseline"])
        path = self.layout.version_dir(self.version) / feature_baseline.FILE
        return dict(json.loads(path.read_text())) if path.is_file() else {}
