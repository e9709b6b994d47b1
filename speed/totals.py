"""Live totals since a batch as-of: which as-ofs a writer keeps one for, and the writes that start,
feed and drop them. The loader runs it against CURRENT; the evaluation's speed state against the
version it switches to.

`{p}:since:{as_of_ms}` (lambdastack.keys) holds, per item, every event in the buckets at or after
the as-of: what the feed reads for its counts and movers instead of summing buckets. Kept exact and
idempotent: every bucket write carries the totals of the tracked as-ofs at or before its bucket
(`Write.totals`), and the store adds the change the write makes to the bucket (0 for a replay).

The rule, per call of `follow(as_of, store, now)` (the loader: once per batch, with CURRENT's as-of):
- an as-of seen for the first time by this writer, when the writer has none yet (it starts) and
  the total exists, is kept as it is: nothing but this writer changes buckets, so it is exact;
- otherwise a new as-of's total is started from the buckets at or after it that still exist,
  read in one round trip and written whole (DEL, then a ZADD per item): exact whenever the as-of
  is within the bucket retention (`redis.signal_ttl_s`), which a nightly batch always is; an
  older as-of is started from the buckets the retention keeps, and a log line says so;
- the previous as-of's total is kept, and still fed, for `speed.since_keep_s` (an API may still
  serve that version for a few seconds), then deleted; CURRENT moving back to it within that
  time takes it up again as it is. A total also has the default TTL, renewed as it is written.
So at most two totals are fed per bucket write while CURRENT moves, one otherwise.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from lambdastack.keys import KeyLayout
from lambdastack.settings import Settings
from lambdastack.speedstore.base import SpeedStore, Write
from lambdastack.speedview import buckets_since


def _stderr(message: str) -> None:
    print(f"[loader] {message}", file=sys.stderr, flush=True)


def _utc(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(ms / 1000))


class LiveTotals:
    """The as-ofs whose live totals one writer keeps (the current one and those kept a while)."""

    def __init__(
        self,
        layout: KeyLayout,
        bucket_s: int,
        retention_s: int,
        keep_s: float,
        echo: Callable[[str], None] = _stderr,
    ):
        self._layout, self._bucket_s, self._echo = layout, bucket_s, echo
        self._retained = retention_s // bucket_s + 2  # buckets a total is started from, at most
        self._keep_ms = int(keep_s * 1000)
        self.current: int | None = None
        self._kept: dict[int, int] = {}  # an earlier as-of -> when its total is dropped (ms)

    @staticmethod
    def from_settings(settings: Settings, echo: Callable[[str], None] = _stderr) -> LiveTotals:
        return LiveTotals(
            KeyLayout(settings.redis.key_prefix),
            settings.batch.bucket_s,
            settings.redis.signal_ttl_s,
            settings.speed.since_keep_s,
            echo,
        )

    def totals_for(self, bucket_ms: int) -> tuple[str, ...]:
        """The totals a write of this bucket feeds: the tracked as-ofs at or before it."""
        tracked = (*self._kept, self.current) if self.current is not None else tuple(self._kept)
        return tuple(self._layout.since(t) for t in tracked if t <= bucket_ms)

    def follow(self, as_of_ms: int | None, store: SpeedStore, now_ms: int) -> list[Write]:
        """The writes that make `as_of_ms` the current as-of at `now_ms` (the module docstring),
        to apply before the writes of buckets computed with `totals_for` after this call."""
        out = []
        for t, until in list(self._kept.items()):
            if now_ms >= until and t != as_of_ms:
                del self._kept[t]
                out.append(Write("del", self._layout.since(t)))
        if as_of_ms is None or as_of_ms == self.current:
            return out
        starting, previous = self.current is None, self.current
        if previous is not None:
            self._kept[previous] = now_ms + self._keep_ms
        self.current = as_of_ms
        if self._kept.pop(as_of_ms, None) is not None:
            return out  # CURRENT came back to a total still fed
        key = self._layout.since(as_of_ms)
        if starting and store.zsets([key])[key]:
            return out
        return out + self._start(as_of_ms, store, now_ms)

    def _start(self, as_of_ms: int, store: SpeedStore, now_ms: int) -> list[Write]:
        """DEL and a ZADD per item of the sum of the buckets at or after the as-of that exist."""
        buckets = buckets_since(as_of_ms, max(as_of_ms, now_ms), self._bucket_s, self._retained)
        keys = [self._layout.bucket(b) for b in buckets]
        held = store.zsets(keys)
        total: dict[str, float] = {}
        for members in held.values():
            for item, n in members.items():
                total[item] = total.get(item, 0.0) + n
        key = self._layout.since(as_of_ms)
        if buckets[0] > as_of_ms:
            existing = sum(1 for m in held.values() if m)
            self._echo(
                f"the live total since {_utc(as_of_ms)} ({key}) starts from the {existing} bucket(s) "
                f"that exist since {_utc(buckets[0])}: the buckets between the as-of and then are "
                f"past the retention (redis.signal_ttl_s), so their events are not in it"
            )
        return [Write("del", key), *(Write("zadd", key, item, n) for item, n in total.items())]
