"""Vector arithmetic of the batch layer (plain numpy): normalisation, combination, top-N."""

from __future__ import annotations

import numpy as np

CONTENT_WEIGHT = 0.5  # share of the squared norm given to the content part of a combined vector


def normalize_rows(m: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return np.divide(m, norms, out=np.zeros_like(m, dtype=np.float64), where=norms > 0)


def combine(content: np.ndarray, collaborative: np.ndarray, has_collab: np.ndarray) -> np.ndarray:
    """One unit vector per row from a content part and a collaborative part; rows without a
    collaborative part (cold items or users) keep the content direction only."""
    c = normalize_rows(content.astype(np.float64))
    a = normalize_rows(collaborative.astype(np.float64))
    wc, wa = np.sqrt(CONTENT_WEIGHT), np.sqrt(1.0 - CONTENT_WEIGHT)
    out = np.hstack([c * np.where(has_collab, wc, 1.0)[:, None], a * np.where(has_collab, wa, 0.0)[:, None]])
    return normalize_rows(out)


def top_n(
    queries: np.ndarray,
    items: np.ndarray,
    n: int,
    exclude: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of the n highest dot products per query row, best first; `exclude[r]`
    holds item indices barred for row r. Ties break by lower item index."""
    scores = queries @ items.T
    if exclude is not None:
        for r, bar in enumerate(exclude):
            if len(bar):
                scores[r, bar] = -np.inf
    n = min(n, items.shape[0])
    if n < items.shape[0]:
        part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    else:
        part = np.tile(np.arange(items.shape[0]), (scores.shape[0], 1))
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)  # by score, then by lower index
    idx = np.take_along_axis(part, order, axis=1)
    return idx, np.take_along_axis(scores, idx, axis=1)
