"""The compiled inner loops of the kNN evidence (lambdastack.retrieval) and its features
(lambdastack.candidate_features): one pass over a recent sequence's neighbour lists, the columns
of a few candidates, the best unseen rows. Each is one call per request where the numpy form was a
dozen or more calls of a few microseconds each over arrays of a few thousand entries (issue #12:
the feed's cost). Numba compiles them on first use and caches the machine code next to this file
(`warm` does it ahead of requests); plain-Python semantics, so NUMBA_DISABLE_JIT=1 runs them as
written.
"""

from __future__ import annotations

import numpy as np

from lambdastack.jit import njit

# the distinct rows of a gather are found through a table of one slot per row of the index while
# it has at most this many slots per gathered entry (cheaper than sorting them), by sorting beyond
DENSE_ROWS_PER_ENTRY = 16
# the rows of an evidence's stats: score, best, votes, last, origin (lambdastack.retrieval)
STATS = 5


@njit(cache=True, nogil=True)
def _gathered(indptr: np.ndarray, seq: np.ndarray) -> int:
    """How many entries the lists of `seq`'s valid rows hold."""
    n_rows, total = len(indptr) - 1, 0
    for k in range(len(seq)):
        r = seq[k]
        if 0 <= r < n_rows:
            total += indptr[r + 1] - indptr[r]
    return total


@njit(cache=True, nogil=True)
def _distinct(indptr: np.ndarray, cols: np.ndarray, seq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows the lists of `seq` name, ascending, and a table from a row to its
    position among them (one slot per row: the lists name rows of the index, as
    NeighbourIndex.build makes them), or an empty table when that would be large next to the
    entries: the rows are then sorted, and searched."""
    n_rows = len(indptr) - 1
    total = _gathered(indptr, seq)
    if n_rows > DENSE_ROWS_PER_ENTRY * total:
        rows = np.empty(total, np.int64)
        n = 0
        for k in range(len(seq)):
            r = seq[k]
            if 0 <= r < n_rows:
                for e in range(indptr[r], indptr[r + 1]):
                    rows[n] = cols[e]
                    n += 1
        return np.unique(rows), np.empty(0, np.int64)
    position = np.zeros(n_rows, np.int64)
    for k in range(len(seq)):
        r = seq[k]
        if 0 <= r < n_rows:
            for e in range(indptr[r], indptr[r + 1]):
                position[cols[e]] = 1
    # without a branch (the marks fall at random): every slot writes, only a marked one advances;
    # an unmarked slot's position is never read
    rows = np.empty(total + 1, np.int64)
    n = 0
    for c in range(n_rows):
        marked = position[c]
        rows[n] = c
        position[c] = n
        n += marked
    return rows[:n], position


@njit(cache=True, nogil=True)
def _add(stats: np.ndarray, p: int, s: float, w: float, k: int) -> None:
    stats[0, p] += s * w
    if s > stats[1, p]:
        stats[1, p] = s
        stats[4, p] = k
    stats[2, p] += 1.0
    if k == 0:
        stats[3, p] += s


@njit(cache=True, nogil=True)
def sequence_evidence(
    indptr: np.ndarray, cols: np.ndarray, sims: np.ndarray, seq: np.ndarray, weights: np.ndarray, m: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The evidence of `seq` (rows newest first, -1 or out of range: no list; `weights` aligned)
    and of its newest m alone: for each, the distinct rows their lists name (ascending) and a
    (STATS, rows) array of score, best, votes, last and origin. Sums run in the order of the
    entries: newest interaction first, each list best first (so `origin`, the position in `seq`
    of the best link, is the newest of equal links)."""
    n_rows = len(indptr) - 1
    rows, position = _distinct(indptr, cols, seq)
    whole = np.zeros((STATS, len(rows)))
    newest = np.zeros((STATS, len(rows)))
    whole[1, :] = -np.inf
    newest[1, :] = -np.inf
    for k in range(len(seq)):
        r = seq[k]
        if not 0 <= r < n_rows:
            continue
        w = weights[k]
        for e in range(indptr[r], indptr[r + 1]):
            p = position[cols[e]] if len(position) else np.searchsorted(rows, cols[e])
            _add(whole, p, sims[e], w, k)
            if k < m:
                _add(newest, p, sims[e], w, k)
    listed = np.flatnonzero(newest[2] > 0.0)
    return rows, whole, rows[listed], newest[:, listed]


@njit(cache=True, nogil=True)
def outside(rows: np.ndarray, exclude: np.ndarray) -> np.ndarray:
    """For each row, whether it is none of `exclude` (~np.isin for non-negative rows; a negative
    row is always outside): a table up to the largest row of either, one pass over each."""
    top = -1
    for r in rows:
        top = max(top, r)
    for r in exclude:
        top = max(top, r)
    table = np.zeros(top + 1, np.bool_)
    for r in exclude:
        if r >= 0:
            table[r] = True
    out = np.ones(len(rows), np.bool_)
    for i in range(len(rows)):
        if rows[i] >= 0 and table[rows[i]]:
            out[i] = False
    return out


# _nth_highest counts the values in this many equal bins between their least and their highest
NTH_BINS = 256


@njit(cache=True, nogil=True)
def _bin(v: float, lo: float, scale: float) -> int:
    return min(int((v - lo) * scale), NTH_BINS - 1)


@njit(cache=True, nogil=True)
def _nth_highest(values: np.ndarray, n: int) -> float:
    """The n-th highest of `values` (finite; 1 <= n <= len(values)): count them in NTH_BINS equal
    bins, find the bin that holds the n-th from the top, and sort only that bin's values. Two
    passes whose branches the processor predicts (most values fall outside that bin), where a
    selection (np.partition, or a heap of the n best) compares and moves values on branches it
    cannot predict."""
    lo, hi = values.min(), values.max()
    if lo == hi:
        return hi
    scale = NTH_BINS / (hi - lo)
    counts = np.zeros(NTH_BINS, np.int64)
    for v in values:
        counts[_bin(v, lo, scale)] += 1
    above, at = 0, NTH_BINS - 1
    while above + counts[at] < n:
        above += counts[at]
        at -= 1
    inside = np.empty(counts[at])
    k = 0
    for v in values:
        if _bin(v, lo, scale) == at:
            inside[k] = v
            k += 1
    inside.sort()
    return inside[len(inside) - (n - above)]


@njit(cache=True, nogil=True)
def best_first(rows: np.ndarray, score: np.ndarray, n: int, exclude: np.ndarray) -> np.ndarray:
    """The n rows of `rows` (ascending) with the highest `score`, none of `exclude`; ties: the
    lower row first. The n-th best score is found first (_nth_highest), then only the rows at or
    above it are sorted."""
    keep = np.flatnonzero(outside(rows, exclude))
    if n <= 0 or not len(keep):
        return rows[:0]
    if n < len(keep):
        cut = _nth_highest(score[keep], n)
        keep = keep[score[keep] >= cut]
    order = keep[np.argsort(-score[keep], kind="mergesort")]  # stable: lower rows first on ties
    return rows[order[:n]]


@njit(cache=True, nogil=True)
def _higher(scores: np.ndarray, of: np.ndarray, which: np.ndarray) -> np.ndarray:
    """For each value of `of` where `which` is set, how many `scores` are strictly higher (0
    elsewhere): a count over every score per value, in a loop without a branch that the compiler
    vectorises (a few dozen values, a few thousand scores: cheaper than sorting or searching,
    whose branches the processor cannot predict)."""
    out = np.zeros(len(of), np.int64)
    for i in range(len(of)):
        if which[i]:
            v, higher = of[i], np.int64(0)
            for j in range(len(scores)):
                higher += np.int64(scores[j] > v)
            out[i] = higher
    return out


@njit(cache=True, nogil=True)
def columns(
    rows: np.ndarray, stats: np.ndarray, candidates: np.ndarray, seen: np.ndarray, width: int
) -> np.ndarray:
    """(len(candidates), width): the first `width` of knn_score, knn_share, knn_best, knn_votes,
    knn_last, knn_rank (lambdastack.candidate_features) of each candidate row, from an evidence's
    `rows` and its (STATS, rows) `stats`; `seen` rows are left out of the rank, a candidate no
    interaction lists ranks after every listed one."""
    out = np.zeros((len(candidates), width))
    if not len(rows) or not len(candidates):
        return out
    at = np.searchsorted(rows, candidates)
    hit = np.zeros(len(candidates), np.bool_)
    top = 0.0
    for i in range(len(candidates)):
        p = at[i]
        if p < len(rows) and rows[p] == candidates[i]:
            hit[i] = True
            out[i, 0] = stats[0, p]
            top = max(top, stats[0, p])
    if width > 1 and top > 0.0:
        out[:, 1] = out[:, 0] / top
    if width <= 2:
        return out
    unseen = stats[0][outside(rows, seen)]
    higher = _higher(unseen, out[:, 0], hit)
    for i in range(len(candidates)):
        if hit[i]:
            for j in range(3):
                out[i, 2 + j] = stats[1 + j, at[i]]
        if width > 5:
            out[i, 5] = np.log1p(higher[i] if hit[i] else len(unseen))
    return out


def warm() -> None:
    """Compile (or load from the cache) every kernel now, on a tiny case, so that no request
    waits for it."""
    indptr, cols = np.array([0, 1, 1]), np.array([1])
    sims, seq = np.array([0.5]), np.array([0, -1])
    rows, whole, _, _ = sequence_evidence(indptr, cols, sims, seq, np.ones(2), 1)
    best_first(rows, whole[0], 1, np.zeros(0, np.int64))
    columns(rows, whole, np.array([1, 0]), np.array([0]), 6)
