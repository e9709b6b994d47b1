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

from lambdastack.events import EVENT_TYPES, is_key_id
from lambdastack.keys import ALL_TYPES, KeyLayout
from lambdastack.settings import Settings
from lambdastack.speedstore.base import SpeedStore, Write
from lambdastack.versions import VersionLayout
from speed import drift, trending
from speed.baseline import Baseline, baseline_follower
from speed.minutes_written import MinutesWritten
from speed.signals import decode_counts, minute_writes, stale_minute_fields, writes_for
from speed.totals import LiveTotals
from speed.user_writes import report_skip

PRUNE_EVERY_MS = 10_000
BATCH_MAX = 10_000  # records taken from Kafka per Redis pipeline
MINUTE_TYPES = (*EVENT_TYPES, ALL_TYPES)


# what a record that is not a signal record raises on its way to writes
MALFORMED = (ValueError, KeyError, TypeError, AttributeError, OverflowError, IndexError)


def _item(key: dict[str, Any]) -> str:
    """The record's item id, held to the event contract's rule: ids become parts of Redis keys."""
    item = key["item_id"]
    if not isinstance(item, str) or not is_key_id(item):
        raise ValueError(f"item_id {str(item)[:60]!r} is not an id the event contract allows")
    return item


def _text(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"a string was expected, not {type(value).__name__}")
    return value


class SignalRouter:
    """Turns signal records into store writes; holds what spans records (baseline, newest window)."""

    def __init__(
        self,
        settings: Settings,
        writer: SpeedStore,
        clock: Callable[[], float] = time.time,
        on_drift: Callable[[drift.DriftReport], None] | None = None,
        on_skip: Callable[[str], None] = report_skip,
    ):
        s = self._speed = settings.speed
        self._on_skip = on_skip  # given the reason of each record that is not a signal record
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
        self._minutes = MinutesWritten()  # minutes written per item, for pruning
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
            try:
                out += self._record(raw_key, raw_value, now_ms)
            except MALFORMED as e:  # it would fail again at the same offset after every restart
                self._on_skip(f"signal record with key {raw_key[:100]!r}: {type(e).__name__}: {e}")
        return out

    def _record(self, raw_key: bytes, raw_value: bytes | None, now_ms: int) -> list[Write]:
        """The writes of one record; raises one of MALFORMED when it is not a signal record."""
        key = orjson.loads(raw_key)
        if not isinstance(key, dict):
            raise ValueError("the key is not a JSON object")
        kind = key.get("kind")
        if kind is None:
            bucket_ms = int(key["bucket_ms"])
            counts = decode_counts(raw_value)
            return writes_for(_item(key), bucket_ms, counts, self._layout, self._totals.totals_for(bucket_ms))
        if kind == "min":
            return self._minute(key, decode_counts(raw_value), now_ms)
        if kind in ("trend", "drift"):
            if raw_value is None:
                return []
            value = orjson.loads(raw_value)
            if not isinstance(value, dict):
                raise ValueError("the value is not a JSON object")
            if kind == "trend":
                return self._trending(int(key["window_end_ms"]), _text(value.get("items")), now_ms)
            return self._drift(int(key["window_end_ms"]), _text(value.get("bins")))
        print(f"[loader] skipping a signal record of unknown kind {str(kind)[:40]!r}", file=sys.stderr)
        return []

    def _minute(self, key: dict[str, Any], counts: dict[str, int] | None, now_ms: int) -> list[Write]:
        item, minute_ms = _item(key), int(key["minute_ms"])
        out = minute_writes(item, minute_ms, counts, self._layout, self._retention_ms, now_ms)
        if out and out[0].op == "hset":  # remember what was written, to delete it when it ages out
            self._minutes.mark(item, minute_ms)
            if item not in self._scanned:
                self._scanned.add(item)
                self._unscanned.add(item)
        return out

    def _drift(self, window_end_ms: int, bins: str | None) -> list[Write]:
        if self._drift_latest is not None and window_end_ms <= self._drift_latest:
            return []  # the hash holds the newest window only
        counts = drift.decode_bins(bins)  # before the window is taken as the newest
        self._drift_latest = window_end_ms
        baseline, s = self._baseline.current() or Baseline(), self._speed
        r = drift.report(
            window_end_ms,
            counts,
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
        for item, m in self._minutes.pop_before(cutoff):
            key = self._layout.item_minutes(item)
            out += [Write("hdel", key, KeyLayout.item_field(m, t)) for t in MINUTE_TYPES]
        return out
