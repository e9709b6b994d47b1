"""Online features and scores: the batch state as of the as-of plus the speed layer's events since,
through the same lambdastack.features code the training set was built with."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from lambdastack.events import Event
from lambdastack.features import UserState
from serving.batch_view import BatchView


def online_state(view: BatchView, user_id: str, recent: Iterable[Event]) -> UserState:
    """The user's state at now: batch state, then the events at or after the as-of, in time order."""
    state = view.user_state(user_id)
    newer = sorted(
        (e for e in recent if e.event_time_ms >= view.as_of_ms), key=lambda e: (e.event_time_ms, e.event_id)
    )
    for e in newer:
        view.side.apply(state, e.item_id, e.event_time_ms, e.type, e.value)
    return state


def feature_matrix(
    view: BatchView,
    state: UserState,
    item_ids: Sequence[str],
    speed_counts: Mapping[str, int],
    t: int,
) -> np.ndarray:
    """Rows of lambdastack.features.FEATURE_NAMES for each item at instant t."""
    rows = [view.side.row(state, i, view.count(i) + int(speed_counts.get(i, 0)), t) for i in item_ids]
    return np.asarray(rows, dtype=np.float64).reshape(len(item_ids), -1)
