"""Per-event scoring of the speed layer: a user's last interactions + a batch version -> fresh
candidates scored by the version's model. Pure (numpy and the ONNX function of the ScoringView).

The merge contract, as in the serving layer: the user's state is the batch profile as of the
version's as-of, then the window's interactions at or after the as-of applied in time order
(event time, then event id); interactions before the as-of are already in the profile. The
state is exact while the user has at most `speed.user_window_n` events since the as-of.
Candidates are the batch neighbours of the items the user just engaged with (the triggering
item first), minus every item the user has seen (in the window or in the batch history).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from lambdastack import candidate_features
from lambdastack.features import DECAY_PER_MS, UserState, event_weights, is_positive
from lambdastack.retrieval import KnnEvidence, recent_sequence, sequence_evidence, session_sequence
from lambdastack.speedview import FreshCandidates, Interaction, encode_fresh
from speed.scoring_view import ScoringView
from speed.user_window import ENTRY_SEP, parse_window

SCORE_DECIMALS = 6  # what lambdastack.speedview.encode_fresh keeps


def merged_state(view: ScoringView, user_id: str, window: Sequence[Interaction]) -> UserState:
    """The user's state after the newest interaction of the window (the real-time interest vector
    is its `interest`)."""
    state = view.user_state(user_id)
    newer = sorted(
        (e for e in window if e.event_time_ms >= view.as_of_ms), key=lambda e: (e.event_time_ms, e.event_id)
    )
    if newer:
        _fold(state, newer, view)
    return state


def _fold(state: UserState, newer: Sequence[Interaction], view: ScoringView) -> None:
    """UserState.apply of each entry (in time order, none before the state's t_ref) in closed form:
    interest at T = interest x decay(T - t_ref) + sum of w v decay(T - t) over entries with a
    vector. A unit test keeps it equal to the sequential definition (up to float rounding)."""
    vectors, _, has = view.vector_rows([e.item_id for e in newer])
    if has.any():
        t = np.fromiter((e.event_time_ms for e in newer), dtype=np.int64, count=len(newer))[has]
        top = max(state.t_ref, int(t.max()))
        w = event_weights(
            np.asarray([e.type for e in newer], dtype=object)[has],
            np.fromiter((e.value for e in newer), dtype=np.float64, count=len(newer))[has],
        )
        added = (w * np.exp(-DECAY_PER_MS * (top - t).astype(np.float64))) @ vectors[has]
        if state.interest is None:
            state.interest = added
        else:
            state.interest = state.interest * math.exp(-DECAY_PER_MS * (top - state.t_ref)) + added
        state.t_ref = top
    state.n += len(newer)
    for e in newer:
        for g in view.side.genres.get(e.item_id, ()):
            state.genres[g] = state.genres.get(g, 0) + 1
    state.last_item, state.last_t = newer[-1].item_id, newer[-1].event_time_ms


def seed_items(window: Sequence[Interaction], n: int) -> list[str]:
    """The newest `n` distinct items the user engaged with positively, newest first."""
    out: list[str] = []
    for e in reversed(window):
        if len(out) == n:
            break
        if e.item_id not in out and is_positive(e.type, e.value):
            out.append(e.item_id)
    return out


def candidates(
    view: ScoringView, user_id: str, window: Sequence[Interaction], seeds: Sequence[str], per_seed: int
) -> list[str]:
    """The first `per_seed` neighbours of each seed, in seed order then neighbour rank, without
    seen items."""
    seen = view.history.get(user_id, frozenset()) | {e.item_id for e in window}
    out: dict[str, None] = {}
    for seed in seeds:
        for item in view.neighbours.get(seed, ())[:per_seed]:
            if item not in seen:
                out.setdefault(item)
    return list(out)


def window_evidence(
    view: ScoringView, user_id: str, window: Sequence[Interaction], t: int
) -> tuple[KnnEvidence, np.ndarray, KnnEvidence]:
    """The kNN evidence of the user's newest interactions (the window's at or after the as-of, then
    the batch's) and of the session's at t, as the API computes them, and the rows of every item
    the user has seen."""
    m = view.matrix
    seq = m.rows(recent_sequence(view.recent.get(user_id, ()), window, view.as_of_ms, view.knn_recent_n))
    now = m.rows(session_sequence(window, view.as_of_ms, t, view.knn_session_s * 1000, view.knn_recent_n))
    evidence, session = sequence_evidence(view.knn, seq, now, view.knn_decay)
    seen = m.rows([*view.history.get(user_id, ()), *(e.item_id for e in window)])
    return evidence, seen, session


def feature_matrix(
    view: ScoringView,
    user_id: str,
    state: UserState,
    window: Sequence[Interaction],
    items: Sequence[str],
    t: int,
) -> np.ndarray:
    """The model's features of many candidates at once (lambdastack.candidate_features, as the API
    ranks). The counts are the batch counts and the live counts 0: the speed counts live in Redis,
    which the scoring function does not read (the API ranks the fresh candidates again with them)."""
    m = view.matrix
    rows = m.rows(items)
    evidence, seen, session = window_evidence(view, user_id, window, t)
    counts = m.counts[rows]
    live = np.zeros_like(counts)
    return candidate_features.feature_matrix(m, state, rows, counts, live, evidence, seen, t, session)


def score(
    view: ScoringView, user_id: str, window: Sequence[Interaction], fresh_n: int, seeds_n: int, per_seed: int
) -> FreshCandidates | None:
    """The fresh candidates after the window's newest event; None unless it is a positive
    engagement and the version has a model."""
    if not window or view.ranker is None:
        return None
    trigger = window[-1]
    if not is_positive(trigger.type, trigger.value):
        return None
    items = candidates(view, user_id, window, seed_items(window, seeds_n), per_seed)
    ranked: list[tuple[str, float]] = []
    if items:
        state = merged_state(view, user_id, window)
        p = view.ranker(feature_matrix(view, user_id, state, window, items, trigger.event_time_ms))
        ranked = sorted(
            ((i, round(float(s), SCORE_DECIMALS)) for i, s in zip(items, p, strict=True)),
            key=lambda r: (-r[1], r[0]),
        )[:fresh_n]
    return FreshCandidates(view.version, view.version, trigger.event_time_ms, tuple(ranked))


def fresh_value(
    view: ScoringView | None, user_id: str, window: str, fresh_n: int, seeds_n: int, per_seed: int
) -> str | None:
    """The `fresh` field value (encoded FreshCandidates) after a window string, or None."""
    if view is None:
        return None
    fresh = score(view, user_id, parse_window(window), fresh_n, seeds_n, per_seed)
    return None if fresh is None else encode_fresh(fresh)


def fresh_values(
    view: ScoringView | None,
    user_ids: Sequence[str],
    windows: Sequence[str],
    fresh_n: int,
    seeds_n: int,
    per_seed: int,
) -> list[str | None]:
    """`fresh_value` of each (user, window) of a batch, in order, except that only a user's last
    positive engagement in the batch is scored: the users sink is an upsert keyed by user, so an
    earlier fresh list of the same user in the same batch would be replaced before anyone could
    read it (None: nothing to write). The same values as one call per row, for less work."""
    out: list[str | None] = [None] * len(user_ids)
    done: set[str] = set()
    for n in range(len(user_ids) - 1, -1, -1):
        user, window = user_ids[n], windows[n]
        if user in done or not window:
            continue
        trigger = parse_window(window.rsplit(ENTRY_SEP, 1)[-1])[-1]
        if is_positive(trigger.type, trigger.value):
            done.add(user)
            out[n] = fresh_value(view, user, window, fresh_n, seeds_n, per_seed)
    return out
