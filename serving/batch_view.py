"""A published batch version held in memory, in columnar form, loaded once per version."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow.parquet as pq

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
    return BatchView(
        version=version,
        as_of_ms=int(manifest["as_of_ms"]),
        item_ids=ids,
        item_events=events,
        titles=titles,
        history=history,
        index={str(i): n for n, i in enumerate(ids)},
    )
