"""A minimal published batch version for speed-layer tests: just the views the speed job reads
(item stats, items, embeddings, neighbours, profiles, histories), no Spark needed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

HOUR = 3_600_000
DIM = 4


def _write(vdir: Path, view: str, columns: dict[str, Any]) -> None:
    (vdir / view).mkdir(parents=True)
    pq.write_table(pa.table(columns), vdir / view / "part-0.parquet")


def publish(
    views: Path, now_ms: int, item_events: dict[str, int], feature_baseline: dict | None = None
) -> str:
    """Write version v000001 as of an hour ago (history: the day before) and make it current."""
    vdir = views / "versions" / "v000001"
    items = list(item_events)
    _write(vdir, "item_stats", {"item_id": items, "events": list(item_events.values())})
    _write(vdir, "items", {"item_id": items, "genres": [["drama"] for _ in items]})
    _write(vdir, "item_embeddings", {"item_id": items, "content": [[1.0] + [0.0] * (DIM - 1) for _ in items]})
    _write(vdir, "item_neighbours", {"item_id": items, "neighbours": [[] for _ in items]})
    _write(
        vdir,
        "user_profiles",
        {
            "user_id": ["known"],
            "n": [1],
            "interest": [[1.0] + [0.0] * (DIM - 1)],
            "t_ref": [now_ms - 2 * HOUR],
            "genre_names": [["drama"]],
            "genre_counts": [[1]],
            "last_item": [items[0]],
            "last_t": [now_ms - 2 * HOUR],
        },
    )
    _write(vdir, "user_history", {"user_id": ["known"], "items": [[items[0]]]})
    if feature_baseline is not None:
        (vdir / "feature_baseline.json").write_text(json.dumps(feature_baseline))
    manifest = {"as_of_ms": now_ms - HOUR, "input": {"min_event_ms": now_ms - 25 * HOUR}}
    (vdir / "manifest.json").write_text(json.dumps(manifest))
    (views / "CURRENT").write_text("v000001\n")
    return "v000001"
