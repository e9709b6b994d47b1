"""What a user's recent interactions say, worked out once per feed or predict request: the kNN
evidence of their newest interactions (batch and speed, lambdastack.retrieval), that of the
session alone, and the item rows they have seen. The feed's `recent_neighbours` source and the
model's features (lambdastack.candidate_features) read it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from lambdastack.retrieval import (
    EMPTY,
    KnnEvidence,
    Timed,
    recent_sequence,
    sequence_evidence,
    session_sequence,
)
from serving.batch_view import BatchView


@dataclass(frozen=True, slots=True)
class KnnConfig:
    recent_n: int = 20  # newest interactions whose neighbours' similarities are summed
    decay: float = 0.9  # each older interaction's weight: x this
    session_s: int = 1800  # the session: interactions at or after the as-of this recent


@dataclass(frozen=True, slots=True)
class Retrieval:
    evidence: KnnEvidence
    seen: np.ndarray
    session: KnnEvidence = EMPTY
    sequence: tuple[str, ...] = ()  # the recent items `evidence` comes from, newest first

    def because(self, rows: np.ndarray) -> list[str | None]:
        """For each item row, the recent item that led to it (its strongest neighbour link), or
        None for an item no recent interaction lists."""
        seq = self.sequence
        return [seq[k] if k >= 0 else None for k in self.evidence.origins(rows)]

    @staticmethod
    def of(
        view: BatchView,
        interactions: Sequence[Timed],
        seen_since: Iterable[str],
        batch_recent: Sequence[str],
        history_rows: np.ndarray,
        cfg: KnnConfig,
        now_ms: int,
    ) -> Retrieval:
        """`interactions`: the speed view's (oldest first); `seen_since`: the items of the speed
        view's seen set since the as-of; `batch_recent`: the version's newest items of the user
        (newest first); `history_rows`: the rows of the user's batch history."""
        seq = recent_sequence(batch_recent, interactions, view.as_of_ms, cfg.recent_n)
        now = session_sequence(interactions, view.as_of_ms, now_ms, cfg.session_s * 1000, cfg.recent_n)
        since = [*seen_since, *(i.item_id for i in interactions)]
        seen = np.concatenate([history_rows, view.matrix.rows(since)])
        rows = view.matrix.rows
        evidence, session = sequence_evidence(view.knn, rows(seq), rows(now), cfg.decay)
        return Retrieval(evidence, seen, session, tuple(seq))
