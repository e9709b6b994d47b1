"""Retrieval evidence from a user's recent sequence: the batch version's item-item neighbours as a
sparse matrix, and the evidence they give each candidate, aggregated over the user's last
interactions in one compiled pass over their neighbour lists (lambdastack.evidence_kernels; never
a Python loop per item).

For a user whose recent interactions are j_0 (newest), j_1, ... with weights w_k (the caller's:
e.g. `decay ** k`), a candidate i gets
- `score`: sum_k w_k sim(j_k, i), the decayed sum of similarities (item-kNN);
- `best`:  max_k sim(j_k, i), its strongest single link;
- `votes`: how many of the recent interactions list i among their neighbours;
- `last`:  sim(j_0, i), its similarity to the newest interaction;
- `origin`: the k of its strongest link (the newest of equal ones): the recent interaction that
  led to it, which the feed shows as the item's `because`.
Only listed neighbours count (sim is 0 outside an item's list). The feed's `recent_neighbours`
source calls `knn_evidence` (and so the evaluation, which runs the feed); it ranks by `score`;
`best`, `votes` and `last` are the model's features (lambdastack.candidate_features).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from lambdastack import evidence_kernels as kernels


class Timed(Protocol):
    """An interaction as the recent sequence reads it (lambdastack.speedview.Interaction, Event)."""

    @property
    def item_id(self) -> str: ...
    @property
    def event_time_ms(self) -> int: ...


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


@dataclass(frozen=True)
class KnnEvidence:
    """Every item (row) some recent interaction lists, rows ascending, with its score, best,
    votes, last and origin (the rows of `stats`, see the module docstring)."""

    rows: np.ndarray  # int64
    stats: np.ndarray  # (kernels.STATS, len(rows)) float64: score, best, votes, last, origin

    @property
    def score(self) -> np.ndarray:
        return self.stats[0]

    @property
    def best(self) -> np.ndarray:
        return self.stats[1]

    @property
    def votes(self) -> np.ndarray:
        return self.stats[2]

    @property
    def last(self) -> np.ndarray:
        return self.stats[3]

    def origins(self, rows: np.ndarray) -> list[int]:
        """For each of `rows`, the position in the recent sequence of the interaction that led to
        it (its strongest link), or -1 for a row no interaction lists."""
        if not len(rows) or not len(self.rows):
            return [-1] * len(rows)
        at = np.minimum(np.searchsorted(self.rows, rows), len(self.rows) - 1)
        listed = self.rows[at] == rows
        return np.where(listed, self.stats[4, at], -1).astype(np.int64).tolist()

    def best_first(self, n: int, exclude: np.ndarray | None = None) -> np.ndarray:
        """The n rows with the highest score (ties: the lower row first), none of `exclude`."""
        if n <= 0 or not len(self.rows):
            return self.rows[:0]
        none = np.zeros(0, dtype=np.int64)
        return kernels.best_first(self.rows, self.score, n, none if exclude is None else _rows(exclude))


def _rows(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def outside(rows: np.ndarray, exclude: np.ndarray) -> np.ndarray:
    """~np.isin(rows, exclude) for item rows (non-negative ints) through a table as long as the
    largest row, in one compiled pass (lambdastack.evidence_kernels), where np.isin sorts or
    checks its arguments; negative values take np.isin."""
    if not len(rows) or not len(exclude):
        return np.ones(len(rows), dtype=bool)
    rows, exclude = _rows(rows), _rows(exclude)
    if min(int(rows.min()), int(exclude.min())) < 0:
        return ~np.isin(rows, exclude)
    return kernels.outside(rows, exclude)


EMPTY = KnnEvidence(np.zeros(0, dtype=np.int64), np.zeros((kernels.STATS, 0)))


def decay_weights(n: int, decay: float) -> np.ndarray:
    """1, decay, decay^2, ...: the weights of the newest n interactions, newest first."""
    return np.power(decay, np.arange(n, dtype=np.float64))


def _evidence(
    index: NeighbourIndex, recent: np.ndarray, weights: np.ndarray, m: int
) -> tuple[KnnEvidence, KnnEvidence]:
    """The evidence of `recent` and of its newest m (one pass: lambdastack.evidence_kernels)."""
    if not index.n_rows or not len(recent):
        return EMPTY, EMPTY
    rows, whole, newer, newest = kernels.sequence_evidence(
        index.indptr, index.cols, index.scores, _rows(recent), np.asarray(weights, dtype=np.float64), m
    )
    return _or_empty(rows, whole), _or_empty(newer, newest)


def _or_empty(rows: np.ndarray, stats: np.ndarray) -> KnnEvidence:
    return KnnEvidence(rows, stats) if len(rows) else EMPTY


def knn_evidence(index: NeighbourIndex, recent: np.ndarray, weights: np.ndarray) -> KnnEvidence:
    """The evidence of every item some recent interaction lists (see the module docstring).
    `recent`: item rows newest first (a row out of range, e.g. -1 for an unknown item, gives no
    evidence); `weights`: aligned with `recent`. One compiled pass over their lists: no per-item
    loop in Python, no sort of the entries."""
    return _evidence(index, recent, weights, 0)[0]


def sequence_evidence(
    index: NeighbourIndex, seq: np.ndarray, session: np.ndarray, decay: float
) -> tuple[KnnEvidence, KnnEvidence]:
    """The kNN evidence of a recent sequence and of its session (rows newest first, weights
    decay^k): the session's comes from the same pass as the sequence's when it is the sequence's
    prefix, as `recent_sequence` and `session_sequence` make it, else from its own."""
    w = decay_weights(len(seq), decay)
    m = len(session)
    if m <= len(seq) and np.array_equal(seq[:m], session):
        return _evidence(index, seq, w, m)
    return knn_evidence(index, seq, w), knn_evidence(index, session, decay_weights(m, decay))


def recent_sequence(
    batch_recent: Sequence[str], interactions: Sequence[Timed], as_of_ms: int, n: int
) -> list[str]:
    """A user's newest n interactions, newest first: the speed view's at or after the as-of
    (`interactions` oldest first as received; equal times: the later received first), then the
    batch version's (`batch_recent`, newest first, which holds every event before the as-of)."""
    newer = sorted(
        (i for i in reversed(interactions) if i.event_time_ms >= as_of_ms), key=lambda i: -i.event_time_ms
    )
    return ([i.item_id for i in newer] + list(batch_recent))[:n]


def session_sequence(interactions: Sequence[Timed], as_of_ms: int, t: int, span_ms: int, n: int) -> list[str]:
    """The session's newest n interactions, newest first: those at or after both the as-of and
    t - span_ms (`interactions` oldest first as received; equal times: the later first)."""
    start = max(as_of_ms, t - span_ms)
    return recent_sequence((), [i for i in interactions if i.event_time_ms >= start], as_of_ms, n)


def top_scored(scores: np.ndarray, n: int, exclude: np.ndarray) -> np.ndarray:
    """The rows of the n highest positive `scores` (one per row; ties: the lower row first), none
    of `exclude`: a user's best items by a score over the whole catalogue (the ALS source)."""
    if n <= 0 or not len(scores):
        return np.zeros(0, dtype=np.int64)
    s = scores.astype(np.float64, copy=True)
    s[exclude[(exclude >= 0) & (exclude < len(s))]] = -np.inf
    cand = np.flatnonzero(s > 0.0)
    if n < len(cand):
        cut = np.partition(s[cand], len(cand) - n)[len(cand) - n]
        cand = cand[s[cand] >= cut]
    return cand[np.lexsort((cand, -s[cand]))][:n].astype(np.int64)
