"""Online features: the batch state as of the as-of plus the speed layer's events since, through
the same lambdastack.features definitions the training set was built with.

The vectorised state features of many candidates are lambdastack.item_matrix.ItemMatrix (built once
per version, inside lambdastack.candidate_features); `feature_matrix` is the per-row reference
(lambdastack.features) it is tested against.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from lambdastack.features import STATE_FEATURES, ItemSide, UserState

if TYPE_CHECKING:
    from serving.batch_view import BatchView


class Interaction(Protocol):
    """An event as the features see it (lambdastack.events.Event, speedview.Interaction)."""

    @property
    def item_id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def value(self) -> float: ...
    @property
    def event_time_ms(self) -> int: ...


def apply_since(side: ItemSide, state: UserState, as_of_ms: int, recent: Iterable[Interaction]) -> UserState:
    """Fold the interactions at or after the as-of into `state`, in time order (ties: event id)."""
    newer = sorted(
        (e for e in recent if e.event_time_ms >= as_of_ms),
        key=lambda e: (e.event_time_ms, getattr(e, "event_id", "")),
    )
    for e in newer:
        side.apply(state, e.item_id, e.event_time_ms, e.type, e.value)
    return state


def online_state(view: BatchView, user_id: str, recent: Iterable[Interaction]) -> UserState:
    """The user's state at now: batch state, then the events at or after the as-of, in time order."""
    return apply_since(view.side, view.user_state(user_id), view.as_of_ms, recent)


def feature_matrix(
    view: BatchView,
    state: UserState,
    item_ids: Sequence[str],
    speed_counts: Mapping[str, int],
    t: int,
) -> np.ndarray:
    """Rows of STATE_FEATURES for each item at instant t, one lambdastack.features call per row."""
    rows = [view.side.row(state, i, view.count(i) + int(speed_counts.get(i, 0)), t) for i in item_ids]
    return np.asarray(rows, dtype=np.float64).reshape(len(item_ids), len(STATE_FEATURES))
