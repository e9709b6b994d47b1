"""Drift of the model's input features: live distributions against the training baseline.

The baseline of a feature is its bin edges and the share of training rows in each bin
(lambdastack/feature_baseline.py: the format, and how the batch layer builds it). Flink bins
the online feature rows of sampled events and counts rows per window, feature and bin; the
loader turns each closed window into the Population Stability Index per feature,
PSI = sum over bins of (a - e) * ln(a / e), with a and e the live and baseline shares (floored
at EPS so an empty bin stays finite), and raises `alert` when any PSI exceeds the threshold and
the window holds at least `min_events` rows (PSI of a small sample is mostly noise).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lambdastack.feature_baseline import bin_of
from lambdastack.keys import KeyLayout
from lambdastack.speedstore.base import Write

EPS = 1e-4
NO_BIN = -1


@dataclass(frozen=True)
class DriftReport:
    window_end_ms: int
    psi: dict[str, float]
    events: int
    alert: bool
    view_version: str | None


def bin_row(values: Sequence[float], names: Sequence[str], baseline: Mapping[str, Any]) -> str | None:
    """The bin of each feature, comma-joined in `names` order (NO_BIN without a baseline)."""
    if not baseline:
        return None
    return ",".join(
        str(bin_of(baseline[n]["edges"], v)) if n in baseline else str(NO_BIN)
        for n, v in zip(names, values, strict=True)
    )


def decode_bins(raw: str | None) -> dict[str, dict[int, int]]:
    """The `bins` field of a drift record: 'feature bin count' joined by ';'."""
    out: dict[str, dict[int, int]] = {}
    for part in (raw or "").split(";"):
        if part:
            feature, b, n = part.split(" ")
            out.setdefault(feature, {})[int(b)] = int(n)
    return out


def psi(proportions: Sequence[float], counts: Mapping[int, int]) -> float:
    """Population Stability Index of live bin counts against baseline bin proportions."""
    total = sum(counts.values())
    if total == 0:
        return 0.0
    out = 0.0
    for k, p in enumerate(proportions):
        a, e = max(counts.get(k, 0) / total, EPS), max(float(p), EPS)
        out += (a - e) * math.log(a / e)
    return out


def report(
    window_end_ms: int,
    counts: Mapping[str, Mapping[int, int]],
    baseline: Mapping[str, Any],
    alert_at: float,
    min_events: int,
    view_version: str | None,
) -> DriftReport:
    """PSI of every feature the baseline and the window both have."""
    values = {
        f: round(psi(baseline[f]["proportions"], c), 6) for f, c in sorted(counts.items()) if f in baseline
    }
    events = max((sum(c.values()) for c in counts.values()), default=0)
    alert = events >= min_events and any(v > alert_at for v in values.values())
    return DriftReport(window_end_ms, values, events, alert, view_version)


def drift_writes(r: DriftReport, layout: KeyLayout, ttl_s: int) -> list[Write]:
    """Replace the drift hash with the report of one window (absolute)."""
    key = layout.drift()
    out = [Write("del", key)]
    out += [Write("hset", key, f, v, ttl_s=ttl_s) for f, v in r.psi.items()]
    out += [
        Write("hset", key, "alert", int(r.alert), ttl_s=ttl_s),
        Write("hset", key, "window_end_ms", r.window_end_ms, ttl_s=ttl_s),
        Write("hset", key, "events", r.events, ttl_s=ttl_s),
        Write("hset", key, "view_version", r.view_version or "", ttl_s=ttl_s),
    ]
    return out
