"""Retrieval evidence from a user's recent sequence: the batch version's item-item neighbours as a
sparse matrix, and the evidence they give each candidate, aggregated over the user's last
interactions in a few numpy operations (never a Python loop per item).

For a user whose recent interactions are j_0 (newest), j_1, ... with weights w_k (the caller's:
e.g. `decay ** k`), a candidate i gets
- `score`: sum_k w_k sim(j_k, i), the decayed sum of similarities (item-kNN);
- `best`:  max_k sim(j_k, i), its strongest single link;
- `votes`: how many of the recent interactions list i among their neighbours;
- `last`:  sim(j_0, i), its similarity to the newest interaction.
Only listed neighbours count (sim is 0 outside an item's list). The serving layer, the speed
layer's scoring, the batch training set and the evaluation all call `knn_evidence`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class NeighbourIndex:
    """Row r's neighbours are cols[indptr[r]:indptr[r + 1]] with similarities scores[...] (best
    first); rows are those of `index`, the version's item numbering."""

    index: Mapping[str, int]
    indptr: np.ndarray  # (rows + 1,) int64
    cols: np.ndarray  # int64
    scores: np.ndarray  # float64

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    @staticmethod
    def build(
        index: Mapping[str, int],
        neighbours: Mapping[str, Sequence[str]],
        scores: Mapping[str, Sequence[float]],
    ) -> NeighbourIndex:
        """The CSR form of per-item neighbour lists over `index`'s rows; items and neighbours
        outside `index` are left out."""
        n = max(index.values(), default=-1) + 1
        lengths = np.zeros(n, dtype=np.int64)
        per_row: dict[int, tuple[list[int], list[float]]] = {}
        for item, near in neighbours.items():
            r = index.get(item)
            if r is None:
                continue
            pairs = [
                (index[b], float(s)) for b, s in zip(near, scores.get(item, ()), strict=False) if b in index
            ]
            per_row[r] = ([c for c, _ in pairs], [s for _, s in pairs])
            lengths[r] = len(pairs)
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        cols = np.zeros(int(indptr[-1]), dtype=np.int64)
        sims = np.zeros(int(indptr[-1]), dtype=np.float64)
        for r, (c, s) in per_row.items():
            cols[indptr[r] : indptr[r + 1]] = c
            sims[indptr[r] : indptr[r + 1]] = s
        return NeighbourIndex(index, indptr, cols, sims)

    def row(self, r: int) -> tuple[np.ndarray, np.ndarray]:
        """Row r's neighbour rows and similarities (empty for a row out of range)."""
        if not 0 <= r < self.n_rows:
            return self.cols[:0], self.scores[:0]
        lo, hi = self.indptr[r], self.indptr[r + 1]
        return self.cols[lo:hi], self.scores[lo:hi]


@dataclass(frozen=True)
class KnnEvidence:
    """Every item (row) some recent interaction lists, rows ascending; arrays aligned."""

    rows: np.ndarray
    score: np.ndarray
    best: np.ndarray
    votes: np.ndarray
    last: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def best_first(self, n: int, exclude: np.ndarray | None = None) -> np.ndarray:
        """The n rows with the highest score (ties: the lower row first), none of `exclude`."""
        if n <= 0:
            return self.rows[:0]
        keep = np.ones(len(self.rows), dtype=bool) if exclude is None else ~np.isin(self.rows, exclude)
        cand = np.flatnonzero(keep)
        if n < len(cand):
            cand = cand[np.argpartition(-self.score[cand], n - 1)[:n]]
            # the n-th score may be shared by rows outside the partition: take every tied row, then cut
            cut = self.score[cand].min()
            cand = np.flatnonzero(keep & (self.score >= cut))
        order = cand[np.lexsort((self.rows[cand], -self.score[cand]))]
        return self.rows[order[:n]]

    def lookup(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(score, best, votes, last) of arbitrary item rows (zeros where no evidence)."""
        rows = np.asarray(rows, dtype=np.int64)
        if not len(self.rows):
            z = np.zeros(len(rows))
            return z, z.copy(), z.copy(), z.copy()
        pos = np.minimum(np.searchsorted(self.rows, rows), len(self.rows) - 1)
        found = self.rows[pos] == rows

        def take(a: np.ndarray) -> np.ndarray:
            return np.where(found, a[pos], 0.0)

        return take(self.score), take(self.best), take(self.votes), take(self.last)


EMPTY = KnnEvidence(*(np.zeros(0, dtype=t) for t in (np.int64, float, float, float, float)))


def decay_weights(n: int, decay: float) -> np.ndarray:
    """1, decay, decay^2, ...: the weights of the newest n interactions, newest first."""
    return np.power(decay, np.arange(n, dtype=np.float64))


def knn_evidence(index: NeighbourIndex, recent: np.ndarray, weights: np.ndarray) -> KnnEvidence:
    """The evidence of every item some recent interaction lists (see the module docstring).
    `recent`: item rows newest first (a row out of range, e.g. -1 for an unknown item, gives no
    evidence); `weights`: aligned with `recent`. One sort of the gathered neighbours, then
    segment reductions (no per-item loop, no unbuffered `ufunc.at`)."""
    recent = np.asarray(recent, dtype=np.int64)
    valid = (recent >= 0) & (recent < index.n_rows)
    starts = np.where(valid, index.indptr[np.clip(recent, 0, index.n_rows)], 0)
    ends = np.where(valid, index.indptr[np.clip(recent + 1, 0, index.n_rows)], 0)
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return EMPTY
    # positions of every listed neighbour of every recent item, in one gather
    which = np.repeat(np.arange(len(recent)), lengths)
    offsets = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    flat = starts[which] + offsets
    order = np.argsort(index.cols[flat], kind="stable")
    cols, sims, which = index.cols[flat][order], index.scores[flat][order], which[order]
    heads = np.concatenate([[0], np.flatnonzero(np.diff(cols)) + 1])
    weighted = sims * np.asarray(weights, dtype=np.float64)[which]
    return KnnEvidence(
        rows=cols[heads],
        score=np.add.reduceat(weighted, heads),
        best=np.maximum.reduceat(sims, heads),
        votes=np.diff(np.append(heads, total)).astype(np.float64),
        # an item is listed at most once per recent interaction: the sum is the one value, if any
        last=np.add.reduceat(np.where(which == 0, sims, 0.0), heads),
    )
