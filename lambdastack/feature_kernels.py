"""The compiled loops of the item-side features: the six STATE_FEATURES of a few dozen candidate
rows (lambdastack.item_matrix.ItemMatrix.features) in one pass, and the candidates' live, ALS and
age columns (lambdastack.candidate_features) in another, where the numpy form gathered their
content vectors and genre shares into temporaries and ran a dozen calls of a few microseconds
each (issue #12: the feed's cost). Compiled and cached as lambdastack.evidence_kernels says.
"""

from __future__ import annotations

import math

import numpy as np

from lambdastack.jit import njit


@njit(cache=True, nogil=True)
def state_columns(
    unit: np.ndarray,
    share: np.ndarray,
    rows: np.ndarray,
    counts: np.ndarray,
    interest: np.ndarray,
    genres: np.ndarray,
    last: int,
    activity: float,
    recency: float,
) -> np.ndarray:
    """(len(rows), 6): item_pop, user_activity, affinity, genre_affinity, last_sim, recency.
    `unit`/`share`: the version's unit content vectors and genre shares per row; `interest`: the
    user's unit interest (empty: none); `genres`: the user's genre counts / n (empty: none);
    `last`: the row of the user's last item (-1: none); `activity`, `recency`: the user's two
    constant columns."""
    out = np.zeros((len(rows), 6))
    dim, n_genres = unit.shape[1], share.shape[1]
    with_interest = len(interest) == dim and dim > 0
    with_genres = len(genres) == n_genres and n_genres > 0
    for i in range(len(rows)):
        r = rows[i]
        out[i, 0] = math.log1p(max(counts[i], 0))
        out[i, 1] = activity
        if with_interest:
            out[i, 2] = _dot(unit, r, interest)
        if with_genres:
            out[i, 3] = _dot(share, r, genres)
        if last >= 0:
            out[i, 4] = _dot(unit, r, unit[last])
        out[i, 5] = recency
    return out


@njit(cache=True, nogil=True, inline="always")
def _dot(matrix: np.ndarray, r: int, v: np.ndarray) -> float:
    """matrix[r] . v as a plain loop (np.dot would call BLAS: dearer than the sum at this size)."""
    total = 0.0
    for j in range(len(v)):
        total += matrix[r, j] * v[j]
    return total


@njit(cache=True, nogil=True)
def fact_columns(
    x: np.ndarray,
    cols: tuple[int, int, int],
    rows: np.ndarray,
    live: np.ndarray,
    als: np.ndarray,
    user_als: np.ndarray,
    first_ms: np.ndarray,
    t: int,
    day_ms: float,
) -> None:
    """Write live_pop, als_score and item_age (lambdastack.candidate_features) of each candidate
    row into x's columns `cols`: `als` the version's item factors per row, `user_als` the user's
    (empty, or of another width: none), `first_ms` each row's first event (-1: none)."""
    live_col, als_col, age_col = cols
    with_als = len(user_als) == als.shape[1] and len(user_als) > 0
    for i in range(len(rows)):
        r = rows[i]
        x[i, live_col] = math.log1p(max(live[i], 0.0))
        x[i, als_col] = _dot(als, r, user_als) if with_als else 0.0
        first = first_ms[r]
        x[i, age_col] = math.log1p(max(t - first, 0) / day_ms) if first >= 0 else 0.0


def warm() -> None:
    """Compile (or load from the cache) the kernels now, on a tiny case."""
    one = np.ones((2, 1))
    fact_columns(
        np.zeros((1, 3)), (0, 1, 2), np.array([0]), np.ones(1), one, np.ones(1), np.array([0, -1]), 1, 1.0
    )
    state_columns(one, one, np.array([0]), np.ones(1), np.ones(1), np.ones(1), 0, 0.0, 0.0)
