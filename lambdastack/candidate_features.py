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
              has no event of (new since its as-of).
"""

from __future__ import annotations

import numpy as np

from lambdastack import evidence_kernels as kernels
from lambdastack import feature_kernels
from lambdastack.features import FEATURE_NAMES, STATE_FEATURES, UserState
from lambdastack.item_matrix import ItemMatrix
from lambdastack.retrieval import EMPTY, KnnEvidence

DAY_MS = 86_400_000
NO_FACTORS = np.zeros(0)


def warm() -> None:
    """Compile the features' kernels now (or load them from numba's cache next to their modules;
    `make venv` fills it), so that no request or scored event waits for it: each loader of a
    version calls this."""
    kernels.warm()
    feature_kernels.warm()


def evidence_columns(evidence: KnnEvidence, rows: np.ndarray, seen: np.ndarray, width: int = 6) -> np.ndarray:
    """(len(rows), width): the first `width` of knn_score, knn_share, knn_best, knn_votes,
    knn_last, knn_rank of each candidate row; `seen`: the rows the user interacted with (left out
    of the rank). Only the columns asked for are computed, in one compiled pass
    (lambdastack.evidence_kernels.columns)."""
    if not len(evidence.rows) or not len(rows):
        return np.zeros((len(rows), width))
    rows, seen = np.asarray(rows, dtype=np.int64), np.asarray(seen, dtype=np.int64)
    return kernels.columns(evidence.rows, evidence.stats, rows, seen, width)


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
) -> np.ndarray:
    """(len(rows), len(FEATURE_NAMES)) at instant t: `counts` every event of each candidate the
    views hold (batch + live), `live` the live ones, `evidence` of the recent sequence and
    `session` of the session's; see the module docstring."""
    rows = np.asarray(rows, dtype=np.int64)
    x = np.empty((len(rows), len(FEATURE_NAMES)))
    n_state = len(STATE_FEATURES)
    x[:, :n_state] = matrix.features(state, rows, counts, t)
    x[:, n_state + 1 : n_state + 7] = evidence_columns(evidence, rows, seen)
    x[:, n_state + 7 : n_state + 9] = evidence_columns(session, rows, seen, width=2)
    user_als = NO_FACTORS if state.als is None else np.asarray(state.als, dtype=np.float64)
    live = np.asarray(live, dtype=np.float64)
    facts = (n_state, n_state + 9, n_state + 10)  # live_pop, als_score, item_age
    feature_kernels.fact_columns(x, facts, rows, live, matrix.als, user_als, matrix.first_ms, t, DAY_MS)
    return x
