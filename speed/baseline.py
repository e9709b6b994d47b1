"""The batch baseline of the speed layer, read from a batch version (lambdastack.published):
item event rates (trending) and the feature distributions of the training set (drift). The
loader follows CURRENT with `baseline_follower`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lambdastack.follower import VersionFollower
from lambdastack.published import PublishedVersion
from lambdastack.versions import VersionLayout


@dataclass(frozen=True)
class Baseline:
    """What one batch version says is normal. Empty before the first version."""

    version: str | None = None
    as_of_ms: int | None = None
    rates_per_hour: dict[str, float] = field(default_factory=dict)
    features: dict[str, Any] = field(default_factory=dict)  # feature -> {"edges", "proportions"}


def item_rates(events: dict[str, int], as_of_ms: int, first_event_ms: int) -> dict[str, float]:
    """Events per hour of each item over the version's history (at least one hour long)."""
    hours = max((as_of_ms - first_event_ms) / 3_600_000, 1.0)
    return {item: n / hours for item, n in events.items()}


def load(published: PublishedVersion) -> Baseline:
    """Read the baseline of one complete version."""
    as_of = published.as_of_ms
    first = published.manifest.get("input", {}).get("min_event_ms")
    first = as_of if first is None else int(first)
    rates = item_rates(published.item_counts(), as_of, first)
    return Baseline(published.version, as_of, rates, published.feature_baseline())


def baseline_follower(
    layout: VersionLayout, check_s: float, clock: Callable[[], float] = time.monotonic
) -> VersionFollower[Baseline]:
    """The baseline of the version CURRENT names, looked at every `check_s`; loaded in the caller's
    thread (a version's item_stats are small), so a change is seen by the call that notices it."""
    return VersionFollower(layout, load, check_s, clock, background=False)
