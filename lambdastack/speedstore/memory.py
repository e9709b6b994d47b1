"""The speed store in memory, for unit tests and the evaluation: Redis's data types over dicts.

Values are kept as Redis keeps them (hash fields and strings as the bytes redis-py sends, sorted
set scores as floats), a hash or sorted set left empty is deleted, and the feed's read runs the
Python twin of FEED_LUA over the same keys and arguments, so a read gives the view a Redis
holding the same writes gives. There is no expiry: TTLs are wall time, and the evaluation's
clock is event time.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from typing import Any

from lambdastack.settings import Settings
from lambdastack.speedstore.base import SpeedStore, Write, stored_value, trim_kept
from lambdastack.speedstore.feedscript import FeedPlan
from lambdastack.speedview import (
    FRESH_FIELD,
    RECENT_FIELD,
    ItemView,
    SpeedRead,
    TrendingView,
    UserView,
    decode_feed_reply,
    item_view,
    parse_user,
)


def encode(value: int | float | str | bytes) -> bytes:
    """The bytes redis-py sends for a value (and Redis gives back)."""
    if isinstance(value, bytes):
        return value
    return (value if isinstance(value, str) else repr(value)).encode()


def zrevrange(members: Mapping[str, float], n: int) -> list[tuple[str, float]]:
    """What ZREVRANGE 0 n-1 WITHSCORES returns: score descending, then member descending."""
    return heapq.nlargest(n, members.items(), key=_rank)


def _rank(kv: tuple[str, float]) -> tuple[float, str]:
    return kv[1], kv[0]


def zrangebyscore(members: Mapping[str, float], low: float) -> list[str]:
    """What ZRANGE low +inf BYSCORE returns: the members scoring at least `low`, score ascending,
    then member ascending."""
    return [m for m, s in sorted(members.items(), key=lambda kv: (kv[1], kv[0])) if s >= low]


class MemorySpeedStore(SpeedStore):
    def __init__(self, plan: FeedPlan):
        self._plan = plan
        self._hashes: dict[str, dict[str, bytes]] = {}
        self._zsets: dict[str, dict[str, float]] = {}
        self._strings: dict[str, bytes] = {}
        # the top of a live total, kept up to date as its members rise: a replay reads it per
        # query, and ranking a total of 9,000 items took 2 (heapq) to 12 (sorted) ms a read here
        self._tops: dict[str, tuple[int, list[tuple[str, float]]]] = {}

    @staticmethod
    def from_settings(settings: Settings) -> MemorySpeedStore:
        return MemorySpeedStore(FeedPlan.from_settings(settings))

    def apply(self, writes: Sequence[Write]) -> None:
        for w in writes:
            self._tops.pop(w.key, None)
            if w.op == "hset":
                self._hashes.setdefault(w.key, {})[w.member] = encode(stored_value(w))
            elif w.op == "zadd":
                self._add_to_totals(w, float(w.value or 0))
                self._zsets.setdefault(w.key, {})[w.member] = float(w.value or 0)
            elif w.op == "ztrim":
                self._trim(w.key, trim_kept(w))
            elif w.op == "hdel":
                self._remove(self._hashes, w.key, w.member)
            elif w.op == "zrem":
                self._add_to_totals(w, 0.0)
                self._remove(self._zsets, w.key, w.member)
            elif w.op == "set":
                self._delete(w.key)
                self._strings[w.key] = encode(stored_value(w))
            elif w.op == "del":
                self._delete(w.key)
            else:
                raise ValueError(f"unknown write op {w.op!r}")

    def _add_to_totals(self, w: Write, new: float) -> None:
        """Add the change of the member's score to each of the write's totals (Write.totals)."""
        change = new - self._zsets.get(w.key, {}).get(w.member, 0.0)
        if not change:
            return
        for key in w.totals:
            total = self._zsets.get(key, {}).get(w.member, 0.0) + change
            if total <= 0:
                self._remove(self._zsets, key, w.member)
            else:
                self._zsets.setdefault(key, {})[w.member] = total
            self._rise(key, w.member, total, change)

    def _rise(self, key: str, member: str, score: float, change: float) -> None:
        """Keep the cached top of `key` (`top`) as it is after `member` changed to `score`."""
        cached = self._tops.get(key)
        if cached is None:
            return
        n, top = cached
        whole = len(top) < n  # the cached top holds every member
        if change < 0:
            del self._tops[key]
            return
        kept = [kv for kv in top if kv[0] != member]
        if len(kept) < len(top) or whole or _rank((member, score)) > _rank(top[-1]):
            kept.append((member, score))
            kept.sort(key=_rank, reverse=True)
            self._tops[key] = (n, kept[:n])

    def top(self, key: str, n: int) -> list[tuple[str, float]]:
        """ZREVRANGE key 0 n-1 WITHSCORES (`zrevrange`), cached while only writes with totals
        raise members of `key`."""
        if n <= 0:
            return []
        cached = self._tops.get(key)
        if cached is None or cached[0] < n:
            cached = self._tops[key] = (n, zrevrange(self._zsets.get(key, {}), n))
        return cached[1][:n]

    @staticmethod
    def _remove(kind: dict[str, Any], key: str, member: str) -> None:
        got = kind.get(key)
        if got is not None:
            got.pop(member, None)
            if not got:  # Redis deletes an emptied hash or sorted set
                del kind[key]

    def _trim(self, key: str, kept: int) -> None:
        members = self._zsets.get(key)
        if members is not None and len(members) > kept:
            self._zsets[key] = dict(zrevrange(members, kept))

    def _delete(self, key: str) -> None:
        self._hashes.pop(key, None)
        self._zsets.pop(key, None)
        self._strings.pop(key, None)

    def hash(self, key: str) -> dict[str, bytes]:
        """HGETALL (field names decoded)."""
        return dict(self._hashes.get(key, {}))

    def zset(self, key: str) -> dict[str, float]:
        """ZRANGE 0 -1 WITHSCORES, as a dict."""
        return dict(self._zsets.get(key, {}))

    def dump(self) -> tuple[dict[str, Any], ...]:
        """Everything held (for comparing two stores)."""
        return dict(self._hashes), dict(self._zsets), dict(self._strings)

    def get(self, key: str) -> bytes | None:
        return self._strings.get(key)

    def hget(self, key: str, field: str) -> bytes | None:
        return self._hashes.get(key, {}).get(field)

    def fields(self, keys: list[str]) -> dict[str, list[str]]:
        return {k: list(self._hashes.get(k, {})) for k in keys}

    def zsets(self, keys: list[str]) -> dict[str, dict[str, float]]:
        return {k: self.zset(k) for k in keys}

    def user(self, user_id: str) -> UserView:
        fields = self._hashes.get(self._plan.layout.user(user_id), {})
        return parse_user(fields.get(RECENT_FIELD), fields.get(FRESH_FIELD))

    def item(self, item_id: str, as_of_ms: int, now_ms: int) -> ItemView:
        lay = self._plan.layout
        return item_view(self.hash(lay.item(item_id)), self.hash(lay.item_minutes(item_id)), as_of_ms, now_ms)

    def trending(self, k: int) -> TrendingView:
        latest = self._strings.get(self._plan.layout.trending_latest())
        if latest is None:
            return None, []
        end = int(latest)
        return end, zrevrange(self._zsets.get(self._plan.layout.trending(end), {}), k)

    def read_feed(self, user_id: str, as_of_ms: int, now_ms: int, candidates: Sequence[str]) -> SpeedRead:
        keys, args = self._plan.request(user_id, as_of_ms, now_ms, candidates)
        return decode_feed_reply(self.feed_script(keys, args), candidates, self._plan.movers_n)

    def feed_script(self, keys: Sequence[str], args: Sequence[Any]) -> dict[str, Any]:
        """What FEED_LUA returns for KEYS and ARGV, as the JSON reply decodes (read it side by side)."""
        trending_prefix, trending_n, movers_n, joined, seen_since, *buckets = args
        user = self._hashes.get(keys[0], {})
        out: dict[str, Any] = {"recent": user.get(RECENT_FIELD), "fresh": user.get(FRESH_FIELD)}
        out["seen"] = zrangebyscore(self._zsets.get(keys[2], {}), float(seen_since))
        latest = self._strings.get(keys[1])
        out["trending_end"] = int(latest) if latest else None
        top = (
            zrevrange(self._zsets.get(trending_prefix + latest.decode(), {}), int(trending_n))
            if latest
            else []
        )
        out["trending"] = [[m, s] for m, s in top]
        cands = [c for c in joined.split("\n") if c]
        out["counts"], out["movers"], out["live"] = self._live(keys[3], cands, int(movers_n), *buckets)
        return out

    def _live(
        self, since: str, cands: list[str], movers_n: int, prefix: str, first: int, n: int, step: int
    ) -> tuple[list[float | bool], list[list[Any]], str]:
        """LIVE_LUA's `live`: (counts, movers, source) from the as-of's total, else the buckets."""
        total = self._zsets.get(since)
        if total is not None:
            counts: list[float | bool] = [total.get(c, False) for c in cands]
            return counts, [[m, s] for m, s in self.top(since, movers_n)], "total"
        counts = [False] * len(cands)
        totals: dict[str, float] = {}  # first-seen order, as the script's `order`
        for b in range(int(n)):
            members = self._zsets.get(f"{prefix}{int(first) + b * int(step)}")
            if members is None:
                continue
            for m, score in zrevrange(members, movers_n) if movers_n > 0 else []:
                totals[m] = totals.get(m, 0) + score
            for i, c in enumerate(cands):
                if (held := members.get(c)) is not None:
                    counts[i] = (counts[i] or 0) + held
        return counts, [[m, t] for m, t in totals.items()], "buckets"
