"""Signal records to store writes: what spans records while the loader routes them (the baseline,
the newest trending and drift windows, the minutes to prune, the live totals). The signals topic
carries several record shapes, told apart by the key's `kind`: none (hourly bucket counts, which
also feed the live totals since CURRENT's as-of: speed.totals), "min" (minute counters), "trend"
(one closed trending window), "drift" (feature bin counts of one closed window)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from lambdastack.events import EVENT_TYPES
from lambdastack.keys import ALL_TYPES, KeyLayout
from lambdastack.settings import Settings
from lambdastack.speedstore.base import SpeedStore, Write
from lambdastack.versions import VersionLayout
from speed import drift, trending
from speed.baseline import Baseline, baseline_follower
from speed.signals import decode_counts, minute_writes, stale_minute_fields, writes_for
from speed.totals import LiveTotals

PRUNE_EVERY_MS = 10_000
BATCH_MAX = 10_000  # records taken from Kafka per Redis pipeline
MINUTE_TYPES = (*EVENT_TYPES, ALL_TYPES)


class SignalRouter:
    """Turns signal records into store writes; holds what spans records (baseline, newest window)."""

    def __init__(
        self,
        settings: Settings,
        writer: SpeedStore,
        clock: Callable[[], float] = time.time,
        on_drift: Callable[[drift.DriftReport], None] | None = None,
    ):
        s = self._speed = settings.speed
        self._ttl_s, self._on_drift = settings.redis.signal_ttl_s, on_drift
        self._drift_latest: int | None = None
        self._layout = KeyLayout(settings.redis.key_prefix)
        self._writer, self._clock = writer, clock
        self._baseline = baseline_follower(
            VersionLayout(settings.path(settings.data.views_dir)), s.baseline_check_s
        )
        self._retention_ms = s.minute_retention_s * 1000
        self._totals = LiveTotals.from_settings(settings)
        self._rule = trending.TrendingRule(
            s.trending_window_s,
            s.trending_min_users,
            s.trending_min_z,
            s.trending_min_expected,
            s.trending_top_n,
        )
        self._trending_ttl_s = s.trending_ttl_s
        self._latest: int | None = None
        self._minutes: dict[str, set[int]] = {}  # minutes written per item, for pruning
        self._scanned: set[str] = set()
        self._unscanned: set[str] = set()
        self._pruned_ms = 0

    def start(self) -> None:
        raw = self._writer.get(self._layout.trending_latest())
        self._latest = int(raw) if raw else None
        raw = self._writer.hget(self._layout.drift(), "window_end_ms")
        self._drift_latest = int(raw) if raw else None

    def writes(self, records: Iterable[tuple[bytes, bytes | None]]) -> list[Write]:
        """The writes of a batch of (key, value) records, in order."""
        now_ms = int(self._clock() * 1000)
        as_of = (self._baseline.current() or Baseline()).as_of_ms
        out: list[Write] = self._totals.follow(as_of, self._writer, now_ms)
        for raw_key, raw_value in records:
            key = orjson.loads(raw_key)
            kind = key.get("kind")
            if kind is None:
                bucket_ms = int(key["bucket_ms"])
                totals = self._totals.totals_for(bucket_ms)
                out += writes_for(
                    str(key["item_id"]), bucket_ms, decode_counts(raw_value), self._layout, totals
                )
            elif kind == "min":
                out += self._minute(key, decode_counts(raw_value), now_ms)
            elif kind == "trend" and raw_value is not None:
                out += self._trending(int(key["window_end_ms"]), orjson.loads(raw_value).get("items"), now_ms)
            elif kind == "drift" and raw_value is not None:
                out += self._drift(int(key["window_end_ms"]), orjson.loads(raw_value).get("bins"))
            elif kind not in ("trend", "drift"):
                print(f"[loader] skipping a signal record of unknown kind {kind!r}", file=sys.stderr)
        return out

    def _minute(self, key: dict[str, Any], counts: dict[str, int] | None, now_ms: int) -> list[Write]:
        item, minute_ms = str(key["item_id"]), int(key["minute_ms"])
        out = minute_writes(item, minute_ms, counts, self._layout, self._retention_ms, now_ms)
        if out and out[0].op == "hset":  # remember what was written, to delete it when it ages out
            self._minutes.setdefault(item, set()).add(minute_ms)
            if item not in self._scanned:
                self._scanned.add(item)
                self._unscanned.add(item)
        return out

    def _drift(self, window_end_ms: int, bins: str | None) -> list[Write]:
        if self._drift_latest is not None and window_end_ms <= self._drift_latest:
            return []  # the hash holds the newest window only
        self._drift_latest = window_end_ms
        baseline, s = self._baseline.current() or Baseline(), self._speed
        r = drift.report(
            window_end_ms,
            drift.decode_bins(bins),
            baseline.features,
            s.drift_psi_alert,
            s.drift_min_events,
            baseline.version,
        )
        if self._on_drift is not None:
            self._on_drift(r)
        return drift.drift_writes(r, self._layout, self._ttl_s)

    def _trending(self, window_end_ms: int, items: str | None, now_ms: int) -> list[Write]:
        if window_end_ms + self._trending_ttl_s * 1000 <= now_ms:
            return []  # its TTL has passed (a replay from the earliest offset): Redis would not hold it
        baseline = self._baseline.current() or Baseline()
        ranked = trending.rank(trending.decode_counts(items), baseline.rates_per_hour, self._rule)
        newest = self._latest is None or window_end_ms > self._latest
        if newest:
            self._latest = window_end_ms
        return trending.trending_writes(window_end_ms, ranked, self._layout, self._trending_ttl_s, newest)

    def prune_writes(self) -> list[Write]:
        """HDELs of the minute fields past the retention (at most every PRUNE_EVERY_MS). Minutes
        this process wrote are known; an item's hash is scanned once for older fields."""
        now_ms = int(self._clock() * 1000)
        if now_ms - self._pruned_ms < PRUNE_EVERY_MS:
            return []
        self._pruned_ms = now_ms
        cutoff = now_ms - self._retention_ms
        out = []
        if self._unscanned:
            keys = {self._layout.item_minutes(i): i for i in self._unscanned}
            for key, fields in self._writer.fields(list(keys)).items():
                out += [
                    Write("hdel", key, f) for f in stale_minute_fields(fields, self._retention_ms, now_ms)
                ]
            self._unscanned.clear()
        for item, minutes in self._minutes.items():
            old = [m for m in minutes if m < cutoff]
            minutes.difference_update(old)
            key = self._layout.item_minutes(item)
            out += [Write("hdel", key, KeyLayout.item_field(m, t)) for m in old for t in MINUTE_TYPES]
        self._minutes = {i: m for i, m in self._minutes.items() if m}
        return out
