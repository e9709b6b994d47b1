"""A published batch version held in memory, in columnar form, loaded once per version."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from lambdastack.features import ItemSide, UserState, state_from_row
from lambdastack.versions import VersionLayout


@dataclass(frozen=True)
class BatchView:
    version: str | None
    as_of_ms: int
    item_ids: np.ndarray  # object array of str, most engaged first
    item_events: np.ndarray  # int64, aligned with item_ids
    titles: dict[str, str]
    history: dict[str, frozenset[str]]
    index: dict[str, int] = field(repr=False)
    side: ItemSide = field(default_factory=lambda: ItemSide({}, {}), repr=False)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    model: bytes | None = field(default=None, repr=False)

    @staticmethod
    def empty() -> BatchView:
        return BatchView(None, 0, np.array([], dtype=object), np.array([], dtype=np.int64), {}, {}, {})

    def count(self, item_id: str) -> int:
        i = self.index.get(item_id)
        return int(self.item_events[i]) if i is not None else 0

    def popular(self, n: int) -> list[str]:
        return list(self.item_ids[:n])

    def seen(self, user_id: str) -> frozenset[str]:
        return self.history.get(user_id, frozenset())

    def user_state(self, user_id: str) -> UserState:
        """The user's feature state as of the as-of (empty for a user the batch has not seen)."""
        row = self.profiles.get(user_id)
        return UserState() if row is None else state_from_row(row)


def _profiles(layout: VersionLayout, version: str) -> dict[str, dict[str, Any]]:
    path = layout.view_dir(version, "user_profiles")
    if not path.exists():
        return {}
    cols = ["user_id", "n", "interest", "t_ref", "genre_names", "genre_counts", "last_item", "last_t"]
    return {r["user_id"]: r for r in pq.read_table(path, columns=cols).to_pylist()}


def _side(layout: VersionLayout, version: str) -> ItemSide:
    emb = layout.view_dir(version, "item_embeddings")
    if not emb.exists():
        return ItemSide({}, {})
    t = pq.read_table(emb, columns=["item_id", "content"])
    ids = t["item_id"].to_pylist()
    content = np.asarray(t["content"].to_pylist(), dtype=np.float64) if ids else np.zeros((0, 0))
    meta = pq.read_table(layout.view_dir(version, "items"), columns=["item_id", "genres"]).to_pylist()
    genres = {r["item_id"]: list(r["genres"] or []) for r in meta}
    return ItemSide({i: content[n] for n, i in enumerate(ids)}, genres)


def load(layout: VersionLayout, version: str) -> BatchView:
    """Read one complete version's views."""
    manifest = layout.manifest(version)
    stats = pq.read_table(layout.view_dir(version, "item_stats"), columns=["item_id", "events"])
    order = np.argsort(-stats["events"].to_numpy(), kind="stable")
    ids = np.asarray(stats["item_id"].to_numpy(zero_copy_only=False), dtype=object)[order]
    events = stats["events"].to_numpy()[order].astype(np.int64)
    items = pq.read_table(layout.view_dir(version, "items"), columns=["item_id", "title"])
    titles = {
        i: t for i, t in zip(items["item_id"].to_pylist(), items["title"].to_pylist(), strict=True) if t
    }
    hist = pq.read_table(layout.view_dir(version, "user_history"), columns=["user_id", "items"])
    history = {
        u: frozenset(v) for u, v in zip(hist["user_id"].to_pylist(), hist["items"].to_pylist(), strict=True)
    }
    model_file = layout.version_dir(version) / "model" / "ranker.onnx"
    return BatchView(
        version=version,
        as_of_ms=int(manifest["as_of_ms"]),
        item_ids=ids,
        item_events=events,
        titles=titles,
        history=history,
        index={str(i): n for n, i in enumerate(ids)},
        side=_side(layout, version),
        profiles=_profiles(layout, version),
        model=model_file.read_bytes() if model_file.exists() else None,
    )
