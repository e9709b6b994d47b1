"""The speed view of the replay, built from the replayed events by the speed layer's own code.

Per event, as the speed job does it:
- counts per item and event-time bucket: Flink's `COUNT(*) GROUP BY item, bucket` (Java SQL),
  defined here exactly as the speed tests check Flink against (tests/integration/speedcheck.py);
- the user's last interactions: Flink's OVER ROWS LISTAGG of `speed.user_window` entries (Java
  SQL), turned into the `recent` field by the loader's `speed.user_writes.user_write`;
- fresh candidates: `speed.scoring.fresh_value`, the function of the Flink Python UDF, with the
  SQL pre-filter `speed.users.never_positive_types`, written by `user_write` too;
- trending: distinct users per item in the newest closed HOP window (Java SQL), ranked by the
  loader's `speed.trending.rank` against the version's item rates (`speed.baseline`).
Per query, the Redis replies a `SpeedView.snapshot` pipeline would get are built from that state
and merged by the serving layer's own `merge_bucket_replies` and `parse_user`.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass

from lambdastack.events import Event
from lambdastack.keys import KeyLayout, bucket_start
from lambdastack.settings import Settings
from lambdastack.usersignals import FRESH_FIELD, RECENT_FIELD
from serving.speed_view import SpeedSnapshot, buckets_since, merge_bucket_replies, parse_user
from speed import trending
from speed.scoring import fresh_value
from speed.scoring_view import ScoringView
from speed.user_window import ENTRY_SEP, FIELD_SEP
from speed.user_writes import user_write
from speed.users import never_positive_types


def entry(e: Event) -> str:
    """The window entry of an event, as `speed.user_window.entry_sql` builds it in Flink."""
    return FIELD_SEP.join([e.item_id, e.type, str(float(e.value)), str(e.event_time_ms), e.event_id])


def zrevrange(members: Mapping[str, int], n: int) -> list[tuple[bytes, float]]:
    """What Redis ZREVRANGE 0 n-1 WITHSCORES returns (score descending, then member descending)."""
    top = sorted(members.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)[:n]
    return [(m.encode(), float(s)) for m, s in top]


@dataclass(frozen=True)
class TrendingConfig:
    rule: trending.TrendingRule
    slide_ms: int
    delay_ms: int  # the watermark delay: a window closes this long after its end
    rates_per_hour: Mapping[str, float]


class SpeedState:
    """The speed layer's state after the replayed events; one fresh field per scoring snapshot."""

    def __init__(
        self,
        settings: Settings,
        scorers: Mapping[str, ScoringView | None],
        rates_per_hour: Mapping[str, float],
    ):
        s = settings.speed
        self._s = settings
        self._layout = KeyLayout(settings.redis.key_prefix)
        self._scorers = dict(scorers)
        self._barred = set(never_positive_types())
        self.buckets: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._windows: dict[str, deque[str]] = {}
        self._recent: dict[str, str] = {}
        self._fresh: dict[str, dict[str, str]] = {name: {} for name in self._scorers}
        rule = trending.TrendingRule(
            s.trending_window_s,
            s.trending_min_users,
            s.trending_min_z,
            s.trending_min_expected,
            s.trending_top_n,
        )
        self._trend = TrendingConfig(rule, s.trending_slide_s * 1000, s.watermark_delay_ms, rates_per_hour)
        self._trend_events: deque[Event] = deque()
        self._trend_cache: tuple[int, list[tuple[str, float]]] | None = None

    def _write(self, user_id: str, field: str, payload: str) -> str:
        key = json.dumps({"user_id": user_id, "field": field}).encode()
        value = json.dumps({"user_id": user_id, "field": field, "payload": payload}).encode()
        w = user_write(key, value, self._layout, self._s.speed.user_recent_n)
        return str(w.value)

    def apply(self, e: Event) -> None:
        """Fold one event into every part of the state, as the speed job does on its arrival."""
        s = self._s.speed
        self.buckets[bucket_start(e.event_time_ms, self._s.batch.bucket_s)][e.item_id] += 1
        win = self._windows.setdefault(e.user_id, deque(maxlen=max(s.user_window_n, s.user_recent_n)))
        win.append(entry(e))
        entries = list(win)
        self._recent[e.user_id] = self._write(
            e.user_id, RECENT_FIELD, ENTRY_SEP.join(entries[-s.user_recent_n :])
        )
        if e.type not in self._barred:
            window = ENTRY_SEP.join(entries[-s.user_window_n :])
            for name, snap in self._scorers.items():
                value = fresh_value(snap, e.user_id, window, s.fresh_n, s.fresh_seeds)
                if value is not None:
                    self._fresh[name][e.user_id] = self._write(e.user_id, FRESH_FIELD, value)
        self._trend_events.append(e)

    def user_fields(self, user_id: str, fresh_from: str) -> tuple[str | None, str | None]:
        """The `recent` and `fresh` values the loader would have written to the user's hash."""
        return self._recent.get(user_id), self._fresh[fresh_from].get(user_id)

    def trending_at(self, now_ms: int) -> tuple[int | None, list[tuple[str, float]]]:
        """(end, ranked items) of the newest HOP window closed at `now_ms`."""
        cfg = self._trend
        end = (now_ms - cfg.delay_ms) // cfg.slide_ms * cfg.slide_ms
        if self._trend_cache is not None and self._trend_cache[0] == end:
            return end, self._trend_cache[1]
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
        self._trend_cache = (end, ranked)
        return end, ranked

    def snapshot(
        self, user_id: str, as_of_ms: int, now_ms: int, candidates: list[str], fresh_from: str | None
    ) -> SpeedSnapshot:
        """What `serving.speed_view.SpeedView.snapshot` returns for this state."""
        sv = self._s.serving
        replies: list[object] = []
        buckets = buckets_since(as_of_ms, now_ms, self._s.batch.bucket_s, sv.speed_buckets_max)
        for b in buckets:
            members = self.buckets.get(b, {})
            replies.append(zrevrange(members, sv.speed_movers_n))
            if candidates:
                replies.append([float(members[c]) if c in members else None for c in candidates])
        counts, movers = merge_bucket_replies(candidates, replies, len(buckets), sv.speed_movers_n)
        raw_fresh = self._fresh[fresh_from].get(user_id) if fresh_from is not None else None
        recent, fresh = parse_user(self._recent.get(user_id), raw_fresh)
        end, ranked = self.trending_at(now_ms)
        top = tuple(ranked[: sv.trending_n])
        return SpeedSnapshot(True, counts, movers, recent, fresh, top, end if top else None)
