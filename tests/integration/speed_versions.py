"""A minimal published batch version for speed-layer tests: just the views the speed job reads
(item stats, items, embeddings, neighbours, profiles, histories, and a model if asked), no Spark
needed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lambdastack.features import FEATURE_NAMES
from lambdastack.versions import VersionLayout

HOUR = 3_600_000
DIM = 4


def _write(vdir: Path, view: str, columns: dict[str, Any]) -> None:
    (vdir / view).mkdir(parents=True)
    pq.write_table(pa.table(columns), vdir / view / "part-0.parquet")


def ranker_model(seed: int = 0) -> bytes:
    """A small ONNX ranker of the real kind (batch.ranker.train), fitted to random pools whose
    engaged item has the highest knn_score: scores that depend on the features."""
    from batch.ranker import train

    rng = np.random.default_rng(seed)
    pools, size = 60, 10
    x = rng.normal(size=(pools * size, len(FEATURE_NAMES)))
    qid = np.repeat(np.arange(pools), size)
    best = pd.Series(x[:, FEATURE_NAMES.index("knn_score")]).groupby(qid).idxmax().to_numpy()
    data = pd.DataFrame(x, columns=list(FEATURE_NAMES))
    data.insert(0, "qid", [f"q{q:03d}" for q in qid])
    data.insert(1, "item_id", [f"i{k}" for k in range(len(x))])
    data.insert(2, "t", qid)
    data["label"] = 0
    data.loc[best, "label"] = 1
    return train(data, validate_from=48).onnx


def publish(
    views: Path,
    now_ms: int,
    item_events: dict[str, int],
    feature_baseline: dict | None = None,
    neighbours: dict[str, list[str]] | None = None,
    model: bytes | None = None,
) -> str:
    """Write version v000001 as of an hour ago (history: the day before) and make it current;
    `neighbours` (item -> its neighbours, best first) and `model` (ONNX) if given."""
    vdir = views / "versions" / "v000001"
    items = list(item_events)
    lists = [list((neighbours or {}).get(i, ())) for i in items]
    scores = [[1.0 / (1 + k) for k in range(len(n))] for n in lists]  # best first
    _write(vdir, "item_stats", {"item_id": items, "events": list(item_events.values())})
    _write(vdir, "items", {"item_id": items, "genres": [["drama"] for _ in items]})
    _write(vdir, "item_embeddings", {"item_id": items, "content": [[1.0] + [0.0] * (DIM - 1) for _ in items]})
    _write(
        vdir,
        "item_neighbours",
        {"item_id": items, "neighbours": lists, "scores": scores},
    )
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
    if model is not None:
        path = VersionLayout(views).model_file("v000001")
        path.parent.mkdir()
        path.write_bytes(model)
    manifest = {"as_of_ms": now_ms - HOUR, "input": {"min_event_ms": now_ms - 25 * HOUR}}
    (vdir / "manifest.json").write_text(json.dumps(manifest))
    (views / "CURRENT").write_text("v000001\n")
    return "v000001"
