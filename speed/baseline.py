"""The batch baseline of the speed layer, read from the current batch version and followed:
item event rates (trending) and the feature distributions of the training set (drift)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lambdastack.errors import LambdastackError
from lambdastack.feature_baseline import FILE
from lambdastack.versions import VersionLayout


@dataclass(frozen=True)
class Baseline:
    """What one batch version says is normal. Empty before the first version."""

    version: str | None = None
    rates_per_hour: dict[str, float] = field(default_factory=dict)
    features: dict[str, Any] = field(default_factory=dict)  # feature -> {"edges", "proportions"}


def item_rates(events: dict[str, int], as_of_ms: int, first_event_ms: int) -> dict[str, float]:
    """Events per hour of each item over the version's history (at least one hour long)."""
    hours = max((as_of_ms - first_event_ms) / 3_600_000, 1.0)
    return {item: n / hours for item, n in events.items()}


def feature_baseline(layout: VersionLayout, vid: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """Per-feature bin edges and proportions: the manifest's `feature_baseline`, else the
    version's feature_baseline.json, else none (drift then reports nothing)."""
    if isinstance(manifest.get("feature_baseline"), dict):
        return dict(manifest["feature_baseline"])
    path = layout.version_dir(vid) / FILE
    return dict(json.loads(path.read_text())) if path.is_file() else {}


def load(layout: VersionLayout, vid: str) -> Baseline:
    """Read the baseline of one complete version."""
    import pyarrow.parquet as pq

    manifest = layout.manifest(vid)
    stats = pq.read_table(layout.view_dir(vid, "item_stats"), columns=["item_id", "events"])
    events = dict(zip(stats["item_id"].to_pylist(), stats["events"].to_pylist(), strict=True))
    as_of = int(manifest["as_of_ms"])
    first = manifest.get("input", {}).get("min_event_ms")
    first = as_of if first is None else int(first)
    return Baseline(vid, item_rates(events, as_of, first), feature_baseline(layout, vid, manifest))


class BaselineFollower:
    """Holds the baseline of the version CURRENT names; looks at CURRENT every `check_s`."""

    def __init__(self, layout: VersionLayout, check_s: float, clock: Callable[[], float] = time.monotonic):
        self._layout, self._check_s, self._clock = layout, check_s, clock
        self._checked = -float("inf")
        self.baseline = Baseline()

    def get(self) -> Baseline:
        """The current baseline, re-read when CURRENT names another version."""
        now = self._clock()
        if now - self._checked >= self._check_s:
            self._checked = now
            vid = self._layout.current()
            if vid != self.baseline.version:
                try:
                    self.baseline = Baseline() if vid is None else load(self._layout, vid)
                except (OSError, ValueError, KeyError, LambdastackError) as e:
                    # e.g. the version was garbage-collected meanwhile: keep the last good one
                    print(f"[speed] cannot read the baseline of {vid}: {e}", file=sys.stderr)
        return self.baseline
