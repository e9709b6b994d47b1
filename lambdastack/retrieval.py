"""Retrieval evidence from a user's recent sequence: the batch version's item-item neighbours as a
sparse matrix, and the evidence they give each candidate, aggregated over the user's last
interactions in a few numpy operations (never a Python loop per item).

For a user whose recent interactions are j_0 (newest), j_1, ... with weights w_k (the caller's:
e.g. `decay ** k`), a candidate i gets
- `score`: sum_k w_k sim(j_k, i), the decayed sum of similarities (item-kNN);
- `best`:  max_k sim(j_k, i), its strongest single link;
- `votes`: how many of the recent interactions list i among their neighbours;
- `last`:  sim(j_0, i), its similarity to the newest interaction.
Only listed neighbours count (sim is 0 outside an item's list). The feed's `recent_neighbours`
source calls `knn_evidence` (and so the evaluation, which runs the feed); it ranks by `score`, and
the other three are computed only when read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

import numpy as np

# _distinct marks values in a table while it has at most this many slots per value (a pass over
# it costs less than sorting the values), and sorts them (np.unique) beyond that
DENSE_ROWS_PER_ENTRY = 16


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
    """Every item (row) some recent interaction lists, rows ascending, with its `score`; `best`,
    `votes` and `last` are worked out when first read (the feed's source needs only the score)."""

    rows: np.ndarray
    score: np.ndarray
    # the gathered neighbour entries in gather order (the newest interaction's list first): the
    # position of each entry's item in `rows`, its similarity, which recent interaction listed it
    at: np.ndarray = field(repr=False)
    sims: np.ndarray = field(repr=False)
    which: np.ndarray = field(repr=False)

    @cached_property
    def best(self) -> np.ndarray:
        out = np.full(len(self.rows), -np.inf)
        np.maximum.at(out, self.at, self.sims)
        return out

    @cached_property
    def votes(self) -> np.ndarray:
        return np.bincount(self.at, minlength=len(self.rows)).astype(np.float64)

    @cached_property
    def last(self) -> np.ndarray:
        # the newest interaction's list comes first: its entries are a prefix
        n = int(np.searchsorted(self.which, 1))
        return np.bincount(self.at[:n], self.sims[:n], minlength=len(self.rows))

    def newest(self, m: int, weights: np.ndarray) -> KnnEvidence:
        """The evidence of the newest m interactions alone, with their `weights`: exactly what
        knn_evidence gives for them (their entries are a prefix of the gathered ones), without
        gathering the neighbour lists again. The session's evidence is this prefix of the recent
        sequence's."""
        if m <= 0 or not len(self.rows):
            return EMPTY
        n = int(np.searchsorted(self.which, m))
        if n == 0:
            return EMPTY
        if n == len(self.which):
            return self
        local, at = _distinct(self.at[:n], len(self.rows))  # positions in self.rows
        weighted = self.sims[:n] * np.asarray(weights, dtype=np.float64)[self.which[:n]]
        score = np.bincount(at, weighted, minlength=len(local))
        return KnnEvidence(self.rows[local], score, at, self.sims[:n], self.which[:n])

    def best_first(self, n: int, exclude: np.ndarray | None = None) -> np.ndarray:
        """The n rows with the highest score (ties: the lower row first), none of `exclude`."""
        if n <= 0:
            return self.rows[:0]
        keep = np.ones(len(self.rows), dtype=bool) if exclude is None else outside(self.rows, exclude)
        cand = np.flatnonzero(keep)
        if n < len(cand):
            cand = cand[np.argpartition(-self.score[cand], n - 1)[:n]]
            # the n-th score may be shared by rows outside the partition: take every tied row, then cut
            cut = self.score[cand].min()
            cand = np.flatnonzero(keep & (self.score >= cut))
        order = cand[np.lexsort((self.rows[cand], -self.score[cand]))]
        return self.rows[order[:n]]


def outside(rows: np.ndarray, exclude: np.ndarray) -> np.ndarray:
    """~np.isin(rows, exclude) for item rows (non-negative ints) through a table as long as the
    largest row: one allocation and two gathers, where np.isin sorts or checks its arguments
    (a tenth of a feed's time when it ran three times per request)."""
    if not len(rows) or not len(exclude):
        return np.ones(len(rows), dtype=bool)
    lo = min(int(rows.min()), int(exclude.min()))
    if lo < 0:
        return ~np.isin(rows, exclude)
    table = np.zeros(max(int(rows.max()), int(exclude.max())) + 1, dtype=bool)
    table[exclude] = True
    return ~table[rows]


EMPTY = KnnEvidence(*(np.zeros(0, dtype=t) for t in (np.int64, float, np.int64, float, np.int64)))


def decay_weights(n: int, decay: float) -> np.ndarray:
    """1, decay, decay^2, ...: the weights of the newest n interactions, newest first."""
    return np.power(decay, np.arange(n, dtype=np.float64))


def knn_evidence(index: NeighbourIndex, recent: np.ndarray, weights: np.ndarray) -> KnnEvidence:
    """The evidence of every item some recent interaction lists (see the module docstring).
    `recent`: item rows newest first (a row out of range, e.g. -1 for an unknown item, gives no
    evidence); `weights`: aligned with `recent`. One gather of the lists, then the items they
    name and sums over them by position (bincount: no per-item loop, no sort of the entries)."""
    recent = np.asarray(recent, dtype=np.int64)
    if not index.n_rows:
        return EMPTY
    valid = (recent >= 0) & (recent < index.n_rows)
    safe = np.where(valid, recent, 0)
    starts = index.indptr[safe]
    lengths = (index.indptr[safe + 1] - starts) * valid
    if not lengths.any():
        return EMPTY
    # every listed neighbour of every recent item, newest item's list first, in one gather
    which = np.repeat(np.arange(len(recent)), lengths)
    flat = np.arange(len(which)) + np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return _grouped(index.cols[flat], index.scores[flat], which, weights)


def _grouped(cols: np.ndarray, sims: np.ndarray, which: np.ndarray, weights: np.ndarray) -> KnnEvidence:
    """The evidence of gathered entries (item row, similarity, which recent interaction listed
    it; `which` ascending): their distinct rows, then one weighted bincount over them."""
    rows, at = _distinct(cols, int(cols.max()) + 1)
    weighted = sims * np.asarray(weights, dtype=np.float64)[which]
    return KnnEvidence(rows, np.bincount(at, weighted, minlength=len(rows)), at, sims, which)


def _distinct(values: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct `values` (non-negative, below `size`) ascending, and where each value is among
    them: through a table of `size` while that is small next to the values, else np.unique (a
    sort)."""
    if size > DENSE_ROWS_PER_ENTRY * len(values):
        return np.unique(values, return_inverse=True)
    mark = np.zeros(size, dtype=bool)
    mark[values] = True
    distinct = np.flatnonzero(mark)
    position = np.empty(size, dtype=np.int64)
    position[distinct] = np.arange(len(distinct))
    return distinct, position[values]


def sequence_evidence(
    index: NeighbourIndex, seq: np.ndarray, session: np.ndarray, decay: float
) -> tuple[KnnEvidence, KnnEvidence]:
    """The kNN evidence of a recent sequence and of its session (rows newest first, weights
    decay^k): the session's is the newest len(session) of the sequence's when it is the
    sequence's prefix, as `recent_sequence` and `session_sequence` make it, else its own."""
    w = decay_weights(len(seq), decay)
    evidence = knn_evidence(index, seq, w) if len(seq) else EMPTY
    m = len(session)
    if m <= len(seq) and np.array_equal(seq[:m], session):
        return evidence, evidence.newest(m, w)
    return evidence, knn_evidence(index, session, decay_weights(m, decay)) if m else EMPTY


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
