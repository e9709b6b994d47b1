"""What per-event scoring needs from one published batch version, read with pyarrow.

The speed layer does not import the serving layer; this is its own small reader of the views
(lambdastack.versions describes the layout, batch/job.py what a version holds).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from lambdastack.features import ItemSide, UserState, state_from_row
from lambdastack.item_matrix import ItemMatrix
from lambdastack.versions import VersionLayout

MODEL_FILE = ("model", "ranker.onnx")
PROFILE_COLUMNS = ["user_id", "n", "interest", "t_ref", "genre_names", "genre_counts", "last_item", "last_t"]
Ranker = Callable[[np.ndarray], np.ndarray]  # feature rows (FEATURE_NAMES order) -> P(positive)


@dataclass(frozen=True)
class Snapshot:
    """One version's item side, counts, neighbours, profiles, histories and model."""

    version: str
    as_of_ms: int
    side: ItemSide
    counts: Mapping[str, int]
    neighbours: Mapping[str, tuple[str, ...]]
    profiles: Mapping[str, Mapping[str, Any]] = field(repr=False)
    history: Mapping[str, frozenset[str]] = field(repr=False)
    ranker: Ranker | None = field(default=None, repr=False)

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


def onnx_ranker(model: bytes) -> Ranker:
    """An onnxruntime session (one intra-op thread) as a function of feature rows."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])

    def predict(x: np.ndarray) -> np.ndarray:
        out = session.run(None, {"features": x.astype(np.float32)})
        return np.asarray(out[1])[:, 1].astype(np.float64)

    return predict


def _side(layout: VersionLayout, version: str) -> ItemSide:
    content = _pairs(layout, version, "item_embeddings", ["item_id", "content"])
    vectors = {i: np.asarray(v, dtype=np.float64) for i, v in content}
    meta = pq.read_table(layout.view_dir(version, "items"), columns=["item_id", "genres"]).to_pydict()
    genres = {i: list(g or []) for i, g in zip(meta["item_id"], meta["genres"], strict=True)}
    return ItemSide(vectors, genres)


def _pairs(layout: VersionLayout, version: str, view: str, columns: list[str]) -> list[tuple[Any, Any]]:
    d = pq.read_table(layout.view_dir(version, view), columns=columns).to_pydict()
    return list(zip(d[columns[0]], d[columns[1]], strict=True))


def load_snapshot(layout: VersionLayout, version: str) -> Snapshot:
    """Read one complete version (raises NoVersionError if it is not there)."""
    manifest = layout.manifest(version)
    profiles = pq.read_table(layout.view_dir(version, "user_profiles"), columns=PROFILE_COLUMNS)
    model = layout.version_dir(version).joinpath(*MODEL_FILE)
    return Snapshot(
        version=version,
        as_of_ms=int(manifest["as_of_ms"]),
        side=_side(layout, version),
        counts={i: int(n) for i, n in _pairs(layout, version, "item_stats", ["item_id", "events"])},
        neighbours={
            i: tuple(n or ())
            for i, n in _pairs(layout, version, "item_neighbours", ["item_id", "neighbours"])
        },
        profiles={r["user_id"]: r for r in profiles.to_pylist()},
        history={
            u: frozenset(v or ()) for u, v in _pairs(layout, version, "user_history", ["user_id", "items"])
        },
        ranker=onnx_ranker(model.read_bytes()) if model.is_file() else None,
    )
