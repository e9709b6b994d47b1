"""POST /v1/predict: instances in, predictions out (one model run for all valid instances).

An instance is {"user_id", "item_id"} (features computed from both views, as for a feed) or
{"features": {name: number for every FEATURE_NAMES}}. A bad instance gets an error naming the
field and the reason in its place; the others are still scored.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lambdastack.candidate_features import feature_matrix
from lambdastack.events import MAX_ID_LEN
from lambdastack.features import FEATURE_NAMES, feature_row
from serving.feed import FeedConfig
from serving.online_features import Interaction, apply_since
from serving.recent import Retrieval
from serving.schemas import ID_RE
from serving.served_version import ServedVersion

# what SpeedView.signals_for answers: recent interactions per user, speed counts per item
Signals = tuple[Mapping[str, Sequence[Interaction]], Mapping[str, int]]


@dataclass(frozen=True)
class Parsed:
    """One instance: a feature row, a (user, item) pair to compute it from, or an error."""

    row: list[float] | None = None
    pair: tuple[str, str] | None = None
    error: str | None = None


def _id(name: str, v: Any) -> str | None:
    if not isinstance(v, str) or not v:
        return f"{name}: must be a non-empty string"
    if len(v) > MAX_ID_LEN or not ID_RE.match(v):
        return f"{name}: may hold only letters, digits and _ . - (at most {MAX_ID_LEN})"
    return None


def _features(raw: Any) -> Parsed:
    if not isinstance(raw, Mapping):
        return Parsed(error="features: must be an object of feature values")
    row, errors = feature_row(raw, prefix="features.")
    return Parsed(error="; ".join(errors)) if errors else Parsed(row=row)


def parse_instance(raw: Any) -> Parsed:
    """Validate one instance; the error names every bad field."""
    if not isinstance(raw, Mapping):
        return Parsed(error="instance: must be an object")
    if "features" in raw:
        extra = sorted(set(raw) - {"features"})
        if extra:
            return Parsed(error=f"{extra[0]}: cannot be given with features")
        return _features(raw["features"])
    extra = sorted(set(raw) - {"user_id", "item_id"})
    errors = [f"{n}: is not a field of an instance" for n in extra]
    errors += [e for n in ("user_id", "item_id") if (e := _id(n, raw.get(n))) is not None]
    if errors:
        return Parsed(error="; ".join(errors))
    return Parsed(pair=(raw["user_id"], raw["item_id"]))


def parse_instances(raw: Sequence[Any]) -> list[Parsed]:
    return [parse_instance(r) for r in raw]


def feature_rows(
    snap: ServedVersion, parsed: Sequence[Parsed], signals: Signals | None, t: int, cfg: FeedConfig
) -> np.ndarray:
    """Feature rows of the valid instances, in order (pairs from both views, as the feed computes
    them: its user state, live counts and kNN evidence)."""
    view = snap.view
    recent, counts = signals if signals is not None else ({}, {})
    by_user: dict[str, list[int]] = defaultdict(list)
    rows: list[np.ndarray | None] = [None] * len(parsed)
    for n, p in enumerate(parsed):
        if p.row is not None:
            rows[n] = np.asarray(p.row, dtype=np.float64)
        elif p.pair is not None:
            by_user[p.pair[0]].append(n)
    for user, idx in by_user.items():
        interactions = recent.get(user, ())
        state = apply_since(view.side, view.user_state(user), view.as_of_ms, interactions)
        items = [pair[1] for n in idx if (pair := parsed[n].pair) is not None]
        live = np.asarray([counts.get(i, 0) for i in items], dtype=np.int64)
        history = view.matrix.rows(list(view.seen(user)))
        found = Retrieval.of(view, interactions, (), view.recent.get(user, ()), history, cfg.knn, t)
        rows_of, total = view.matrix.rows(items), view.counts(items) + live
        x = feature_matrix(
            view.matrix, state, rows_of, total, live, found.evidence, found.seen, t, found.session
        )
        for n, row in zip(idx, x, strict=True):
            rows[n] = row
    return np.asarray([r for r in rows if r is not None]).reshape(-1, len(FEATURE_NAMES))
