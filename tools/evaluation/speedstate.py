"""The speed view of the replay: the replayed events folded by the speed layer's own code and
written through the loader's writes into the in-memory speed store, read back as the API reads.

Per event, as the speed job computes it, then as the loader writes it:
- counts per item and event-time bucket: Flink's `COUNT(*) GROUP BY item, bucket` (Java SQL),
  defined here exactly as the speed tests check Flink against (tests/integration/speedcheck.py),
  written by the loader's `speed.signals.writes_for`, feeding the live total since the version's
  as-of that the loader's `speed.totals.LiveTotals` keeps (started, on a switch, as the loader
  starts it when CURRENT moves; its clock is the replay's event time);
- the user's last interactions: Flink's OVER ROWS LISTAGG of `speed.user_window` entries (Java
  SQL), turned into the `recent` field by the loader's `speed.user_writes.user_writes`;
- everything the user interacted with: one `seen:{item}` record per event (Java SQL), written
  into the user's seen set (and the set trimmed) by `user_writes` too;
- fresh candidates: `speed.scoring.fresh_value`, the function of the Flink Python UDF, with the
  SQL pre-filter `speed.users.never_positive_types`, written by `user_writes` too;
- trending: distinct users per item in the newest HOP window closed at the query's time (Java
  SQL), ranked by the loader's `speed.trending.rank` against the version's item rates
  (`speed.baseline`), written by `speed.trending.trending_writes`.
Per query, the feed's read is `MemorySpeedStore.read_feed`, which gives what the API's Redis read
gives for the same writes. One store per scorer (their `fresh` fields differ).
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass

from lambdastack.events import Event
from lambdastack.keys import ALL_TYPES, KeyLayout, bucket_start
from lambdastack.settings import Settings
from lambdastack.speedstore.base import Write
from lambdastack.speedstore.memory import MemorySpeedStore
from lambdastack.speedview import FRESH_FIELD, RECENT_FIELD, SpeedRead
from speed import trending
from speed.scoring import fresh_value
from speed.scoring_view import ScoringView
from speed.signals import writes_for
from speed.totals import LiveTotals
from speed.user_window import ENTRY_SEP, entry
from speed.user_writes import seen_field, user_writes
from speed.users import never_positive_types


@dataclass(frozen=True)
class TrendingConfig:
    rule: trending.TrendingRule
    slide_ms: int
    delay_ms: int  # the watermark delay: a window closes this long after its end
    ttl_s: int
    rates_per_hour: Mapping[str, float]


class SpeedState:
    """The speed layer's state after the replayed events, in one in-memory store per scorer."""

    def __init__(
        self,
        settings: Settings,
        scorers: Mapping[str, ScoringView | None],
        rates_per_hour: Mapping[str, float],
        as_of_ms: int | None = None,
    ):
        """`as_of_ms`: the version's, whose live total is kept from here on (None: none yet)."""
        s = settings.speed
        self._s = settings
        self._layout = KeyLayout(settings.redis.key_prefix)
        self._scorers = dict(scorers)
        self._stores = {name: MemorySpeedStore.from_settings(settings) for name in self._scorers or [""]}
        self._barred = set(never_positive_types())
        self._counts: dict[tuple[str, int], dict[str, int]] = {}
        self._windows: dict[str, deque[str]] = {}
        rule = trending.TrendingRule(
            s.trending_window_s,
            s.trending_min_users,
            s.trending_min_z,
            s.trending_min_expected,
            s.trending_top_n,
        )
        slide_ms = s.trending_slide_s * 1000
        self._trend = TrendingConfig(rule, slide_ms, s.watermark_delay_ms, s.trending_ttl_s, rates_per_hour)
        self._trend_events: deque[Event] = deque()
        self._trend_end: int | None = None  # the window end last written
        self._trend_latest: int | None = None  # the newest window end written (`trending:latest`)
        self._totals = LiveTotals.from_settings(settings, echo=lambda m: print(f"[eval] {m}"))
        self._now_ms = as_of_ms or 0  # the newest event time applied: the live totals' clock
        self._follow_as_of(as_of_ms, self._now_ms)

    def follow(
        self,
        scorers: Mapping[str, ScoringView | None],
        rates_per_hour: Mapping[str, float],
        as_of_ms: int | None = None,
        now_ms: int | None = None,
    ) -> None:
        """Score later events with another version's views, rank later trending windows against
        its item rates and keep the live total since its as-of (started at `now_ms`, default the
        newest event applied), as the speed layer's UDF and loader do when CURRENT moves; what is
        written stays, as it stays in Redis. The scorer names (one store each) cannot change."""
        if set(scorers) != set(self._scorers):
            raise ValueError(f"scorers {sorted(scorers)} are not the state's {sorted(self._scorers)}")
        self._scorers = dict(scorers)
        self._trend = dataclasses.replace(self._trend, rates_per_hour=rates_per_hour)
        self._follow_as_of(as_of_ms, self._now_ms if now_ms is None else now_ms)

    def _follow_as_of(self, as_of_ms: int | None, now_ms: int) -> None:
        store = next(iter(self._stores.values()))  # every store holds the same buckets
        self._apply(self._totals.follow(as_of_ms, store, now_ms))

    def store(self, name: str) -> MemorySpeedStore:
        """The store holding the `fresh` fields of scorer `name` (all hold the rest alike)."""
        return self._stores[name]

    def _apply(self, writes: list[Write]) -> None:
        for store in self._stores.values():
            store.apply(writes)

    def _user_writes(self, user_id: str, fields: dict[str, str]) -> list[Write]:
        """The loader's writes of the users-topic records {field: payload} of one user."""
        records = [
            (
                json.dumps({"user_id": user_id, "field": field}).encode(),
                json.dumps({"user_id": user_id, "field": field, "payload": payload}).encode(),
            )
            for field, payload in fields.items()
        ]
        s = self._s.speed
        return user_writes(records, self._layout, s.user_recent_n, s.seen_max)

    def apply(self, e: Event) -> None:
        """Fold one event into every part of the state, as the speed job does on its arrival."""
        s = self._s.speed
        bucket = bucket_start(e.event_time_ms, self._s.batch.bucket_s)
        counts = self._counts.setdefault((e.item_id, bucket), {ALL_TYPES: 0})
        counts[ALL_TYPES] += 1
        counts[e.type] = counts.get(e.type, 0) + 1
        self._now_ms = max(self._now_ms, e.event_time_ms)
        self._follow_as_of(self._totals.current, self._now_ms)  # drops a total kept long enough
        writes = writes_for(e.item_id, bucket, counts, self._layout, self._totals.totals_for(bucket))
        win = self._windows.setdefault(e.user_id, deque(maxlen=max(s.user_window_n, s.user_recent_n)))
        win.append(entry(e))
        entries = list(win)
        user = {
            RECENT_FIELD: ENTRY_SEP.join(entries[-s.user_recent_n :]),
            seen_field(e.item_id): str(e.event_time_ms),
        }
        writes += self._user_writes(e.user_id, user)
        self._apply(writes)
        if e.type not in self._barred:
            window = ENTRY_SEP.join(entries[-s.user_window_n :])
            for name, snap in self._scorers.items():
                value = fresh_value(snap, e.user_id, window, s.fresh_n, s.fresh_seeds, s.fresh_neighbours_n)
                if value is not None:
                    self._stores[name].apply(self._user_writes(e.user_id, {FRESH_FIELD: value}))
        self._trend_events.append(e)

    def close_trending(self, now_ms: int) -> None:
        """Write the newest HOP window closed at `now_ms`, ranked, as the loader writes it (once per
        window end; the query times of a replay do not go back)."""
        cfg = self._trend
        end = (now_ms - cfg.delay_ms) // cfg.slide_ms * cfg.slide_ms
        if self._trend_end == end:
            return
        self._trend_end = end
        start = end - cfg.rule.window_s * 1000
        while self._trend_events and self._trend_events[0].event_time_ms < start:
            self._trend_events.popleft()
        users: dict[str, set[str]] = defaultdict(set)
        events: dict[str, int] = defaultdict(int)
        for e in self._trend_events:
            if e.event_time_ms < end:
                users[e.item_id].add(e.user_id)
                events[e.item_id] += 1
        counts = [trending.WindowCount(i, len(u), events[i]) for i, u in users.items()]
        ranked = trending.rank(counts, cfg.rates_per_hour, cfg.rule)
        newest = self._trend_latest is None or end > self._trend_latest
        if newest:
            self._trend_latest = end
        self._apply(trending.trending_writes(end, ranked, self._layout, cfg.ttl_s, newest))

    def read_feed(
        self, user_id: str, as_of_ms: int, now_ms: int, candidates: list[str], fresh_from: str | None
    ) -> SpeedRead:
        """What the API's `SpeedView.read_feed` returns for this state at `now_ms`, with the `fresh`
        field of scorer `fresh_from` (None: without one)."""
        self.close_trending(now_ms)
        name = next(iter(self._stores)) if fresh_from is None else fresh_from
        read = self._stores[name].read_feed(user_id, as_of_ms, now_ms, candidates)
        return read if fresh_from is not None else dataclasses.replace(read, fresh=None)
