"""The compiled loop of the state features (lambdastack.item_matrix.ItemMatrix.features): the six
STATE_FEATURES of a few dozen candidate rows in one pass, where the numpy form gathered their
content vectors and genre shares into temporaries and ran a dozen calls of a few microseconds
each (issue #12: the feed's cost). Compiled and cached as lambdastack.evidence_kernels says.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


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


def warm() -> None:
    """Compile (or load from the cache) the kernel now, on a tiny case."""
    one = np.ones((2, 1))
    state_columns(one, one, np.array([0]), np.ones(1), np.ones(1), np.ones(1), 0, 0.0, 0.0)
