"""The ranking model's input for one user's candidates at one instant: the one vectorised
implementation of FEATURE_NAMES, called unchanged by the batch training set (batch.training), the
speed layer's per-event scoring (speed.scoring), the API's feed and predict (serving.feed,
serving.predict) and so the evaluation, which runs the feed.

STATE_FEATURES come from the user state and the item side (lambdastack.item_matrix; their
sequential reference is lambdastack.features). EVIDENCE_FEATURES, for candidate i:
- `live_pop`  log1p(live events of i): every event of i the speed view counted since the batch
              as-of, however old the as-of (its live total `{p}:since:{as_of_ms}`; the training
              set: every event since the start of its window);
- `knn_score` the decayed sum of similarities of i to the user's recent interactions
              (lambdastack.retrieval), 0 when none lists i;
- `knn_share` knn_score over the largest knn_score among the candidates (0 when that is 0);
- `knn_best`  the strongest single similarity; `knn_votes`: how many recent interactions list i;
- `knn_last`  the similarity to the newest interaction;
- `knn_rank`  log1p(how many unseen items have a higher knn_score): 0 for the best; an item no
              recent interaction lists ranks after every listed one;
- `session_score`, `session_share`: knn_score and knn_share over the session only: the user's
              interactions the speed view holds (at or after the as-of) within the session span
              before t (lambdastack.retrieval.session_sequence), what the user is doing right now;
- `als_score` the user's ALS factors (UserState.als) . i's (ItemMatrix.als), both of the version
              (the training set: of an ALS fitted on the events before its window); 0 when
              either has none (a user or item the version does not know);
- `item_age`  log1p(days from i's first event in the version to t); 0 for an item the version
              has no event of (new since its as-of);
- `pop_decayed` log1p(i's positive engagement in the version, each event decayed with half-life
              HALF_LIFE_MS to the as-of (item_stats.decayed_engagement, what the popular lists
              rank by), carried on to t);
- `src_knn`, `src_als`, `src_live`, `src_popular`: 1 when a source of that family proposed i
              (FAMILIES; the feed maps its sources onto them, the training pools are drawn from
              them), else 0;
- `rank_als`, `rank_live`, `rank_popular`: log1p(i's position in that family's list: the user's
              ALS list, the live movers, the popular list; 0 first) as the source proposed it,
              log1p(RANK_ABSENT) when the list does not hold i (knn's rank is `knn_rank`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lambdastack.features import FEATURE_NAMES, STATE_FEATURES, UserState
from lambdastack.item_matrix import ItemMatrix
from lambdastack.retrieval import EMPTY, KnnEvidence, outside

DAY_MS = 86_400_000
FAMILIES = ("knn", "als", "live", "popular")  # the source families, in the src_* order
RANKED = ("als", "live", "popular")  # the families whose list position is a feature (rank_*)
RANK_ABSENT = 1000  # the position given to an item its family's list does not hold


@dataclass(frozen=True)
class Provenance:
    """Where a request's candidates came from: `flags` (candidates, len(FAMILIES)) bool, and per
    RANKED family its list of item rows best first, as the source proposed them."""

    flags: np.ndarray
    lists: Sequence[np.ndarray]

    @staticmethod
    def none(n: int) -> Provenance:
        """Candidates no source proposed (e.g. instances given as pairs)."""
        empty = np.zeros(0, dtype=np.int64)
        return Provenance(np.zeros((n, len(FAMILIES)), dtype=bool), [empty] * len(RANKED))


def unseen_head(rows: np.ndarray, seen: np.ndarray, n: int) -> np.ndarray:
    """The first n of `rows` that `seen` does not hold."""
    return rows[outside(rows, seen)][:n]


def pool_provenance(rows: np.ndarray, parts: Sequence[np.ndarray]) -> Provenance:
    """The provenance of candidate `rows` drawn from the FAMILIES' lists `parts` (knn, als, live,
    popular; each best first, as the training pools draw them): a flag where a list holds the row."""
    flags = np.zeros((len(rows), len(FAMILIES)), dtype=bool)
    for n, part in enumerate(parts):
        flags[:, n] = ~outside(rows, part)
    return Provenance(flags, list(parts[1:]))


def list_positions(rows: np.ndarray, listed: np.ndarray) -> np.ndarray:
    """Each row's position in `listed` (distinct rows, best first), RANK_ABSENT where absent."""
    out = np.full(len(rows), RANK_ABSENT, dtype=np.int64)
    if not len(listed) or not len(rows):
        return out
    order = np.argsort(listed, kind="stable")
    at = np.minimum(np.searchsorted(listed[order], rows), len(listed) - 1)
    hit = listed[order][at] == rows
    out[hit] = order[at[hit]]
    return out


def source_columns(rows: np.ndarray, provenance: Provenance) -> np.ndarray:
    """(len(rows), 7): the src_* flags and rank_* of each candidate row."""
    out = np.empty((len(rows), len(FAMILIES) + len(RANKED)))
    out[:, : len(FAMILIES)] = provenance.flags
    for n, listed in enumerate(provenance.lists):
        out[:, len(FAMILIES) + n] = np.log1p(list_positions(rows, np.asarray(listed, dtype=np.int64)))
    return out


def evidence_columns(evidence: KnnEvidence, rows: np.ndarray, seen: np.ndarray, width: int = 6) -> np.ndarray:
    """(len(rows), width): the first `width` of knn_score, knn_share, knn_best, knn_votes,
    knn_last, knn_rank of each candidate row; `seen`: the rows the user interacted with (left out
    of the rank). Only the columns asked for are computed."""
    out = np.zeros((len(rows), width))
    if not len(evidence.rows) or not len(rows):
        return out
    pos = np.minimum(np.searchsorted(evidence.rows, rows), len(evidence.rows) - 1)
    hit = evidence.rows[pos] == rows
    at = pos[hit]
    score = np.where(hit, evidence.score[pos], 0.0)
    out[:, 0] = score
    top = float(score.max())
    if top > 0.0:
        out[:, 1] = score / top
    if width <= 2:
        return out
    out[hit, 2] = evidence.best[at]
    out[hit, 3] = evidence.votes[at]
    out[hit, 4] = evidence.last[at]
    unseen = np.sort(evidence.score[outside(evidence.rows, seen)])
    higher = len(unseen) - np.searchsorted(unseen, score, side="right")
    out[:, 5] = np.log1p(np.where(hit, higher, len(unseen)))
    return out


def feature_matrix(
    matrix: ItemMatrix,
    state: UserState,
    rows: np.ndarray,
    counts: np.ndarray,
    live: np.ndarray,
    evidence: KnnEvidence,
    seen: np.ndarray,
    t: int,
    session: KnnEvidence = EMPTY,
    provenance: Provenance | None = None,
) -> np.ndarray:
    """(len(rows), len(FEATURE_NAMES)) at instant t: `counts` every event of each candidate the
    views hold (batch + live), `live` the live ones, `evidence` of the recent sequence and
    `session` of the session's, `provenance` the sources' (none: no source proposed any); see
    the module docstring."""
    x = np.empty((len(rows), len(FEATURE_NAMES)))
    n_state = len(STATE_FEATURES)
    x[:, :n_state] = matrix.features(state, rows, counts, t)
    x[:, n_state] = np.log1p(np.maximum(live, 0))
    x[:, n_state + 1 : n_state + 7] = evidence_columns(evidence, rows, seen)
    x[:, n_state + 7 : n_state + 9] = evidence_columns(session, rows, seen, width=2)
    x[:, n_state + 9] = matrix.als_scores(state.als, rows)
    first = matrix.first_ms[rows]
    x[:, n_state + 10] = np.where(first >= 0, np.log1p(np.maximum(t - first, 0) / DAY_MS), 0.0)
    x[:, n_state + 11] = np.log1p(matrix.decayed_at(rows, t))
    x[:, n_state + 12 :] = source_columns(rows, provenance or Provenance.none(len(rows)))
    return x
