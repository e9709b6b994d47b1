"""Reads of the speed view in Redis: one pipelined round trip per feed, within a time budget.

Every read degrades instead of failing: when Redis is down, slower than `redis.socket_timeout_ms`
or answers with something unreadable, the reader returns `SpeedSnapshot.unavailable()` and for
`retry_after_s` does not try again, so a dead Redis costs requests nothing.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from lambdastack.keys import ALL_TYPES, KeyLayout, bucket_start
from lambdastack.settings import Settings
from lambdastack.usersignals import (
    FRESH_FIELD,
    RECENT_FIELD,
    FreshCandidates,
    Interaction,
    decode_fresh,
    decode_recent,
)
from serving.resp import RespConnection, RespError

log = logging.getLogger("lambdastack.serving")
MINUTE_MS = 60_000
WINDOWS_MIN = {"1m": 1, "10m": 10, "1h": 60}


@dataclass(frozen=True)
class SpeedSnapshot:
    """What the speed view says for one request (plain data: the feed ranks from it)."""

    ok: bool  # False: Redis was unreachable or over budget, and everything below is empty
    counts: Mapping[str, int]  # item -> events in buckets at or after the batch as-of
    movers: tuple[tuple[str, int], ...] = ()  # most engaged items since the as-of
    recent: tuple[Interaction, ...] = ()  # the user's last interactions, oldest first
    fresh: FreshCandidates | None = None
    trending: tuple[tuple[str, float], ...] = ()
    trending_end_ms: int | None = None

    @staticmethod
    def unavailable() -> SpeedSnapshot:
        return SpeedSnapshot(False, {})

    def newest_signal_ms(self) -> int | None:
        """Event time of the freshest signal in this snapshot (None: there is none)."""
        times = [i.event_time_ms for i in self.recent]
        if self.fresh is not None:
            times.append(self.fresh.event_time_ms)
        if self.trending_end_ms is not None and self.trending:
            times.append(self.trending_end_ms)
        return max(times) if times else None


def buckets_since(as_of_ms: int, now_ms: int, bucket_s: int, max_buckets: int) -> list[int]:
    """Bucket starts from the as-of (or the oldest of the newest `max_buckets`) up to now."""
    size = bucket_s * 1000
    last = bucket_start(now_ms, bucket_s) + size  # events slightly ahead of this clock
    first = max(bucket_start(as_of_ms, bucket_s) if as_of_ms > 0 else 0, last - (max_buckets - 1) * size)
    return list(range(first, last + 1, size))


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def parse_user(raw_recent: Any, raw_fresh: Any) -> tuple[tuple[Interaction, ...], FreshCandidates | None]:
    """The user hash's fields; a field that does not decode is logged and ignored."""
    recent: tuple[Interaction, ...] = ()
    fresh = None
    try:
        recent = tuple(decode_recent(raw_recent))
    except (ValueError, TypeError, KeyError):
        log.warning("ignoring an unreadable %s field of a user", RECENT_FIELD)
    try:
        fresh = decode_fresh(raw_fresh)
    except (ValueError, TypeError, KeyError):
        log.warning("ignoring an unreadable %s field of a user", FRESH_FIELD)
    return recent, fresh


def merge_bucket_replies(
    candidates: Sequence[str], replies: Sequence[Any], n_buckets: int, movers_n: int
) -> tuple[dict[str, int], tuple[tuple[str, int], ...]]:
    """Sum per-bucket ZMSCORE (candidates) and ZREVRANGE (movers) replies over the buckets: the
    reference of what SNAPSHOT_LUA sums inside Redis (the evaluation harness calls this one)."""
    counts: dict[str, int] = defaultdict(int)
    movers: dict[str, int] = defaultdict(int)
    step = 2 if candidates else 1
    for n in range(n_buckets):
        for member, score in replies[n * step]:
            movers[_text(member)] += int(score)
        if candidates:
            for item, score in zip(candidates, replies[n * step + 1], strict=True):
                if score is not None:
                    counts[item] += int(score)
    return with_movers(dict(counts), movers, movers_n)


def with_movers(
    counts: dict[str, int], movers: Mapping[str, int], movers_n: int
) -> tuple[dict[str, int], tuple[tuple[str, int], ...]]:
    """`counts` completed with every mover's total, and the `movers_n` top movers (ties: by id)."""
    for item, total in movers.items():
        counts.setdefault(item, total)
    top = sorted(movers, key=lambda i: (-movers[i], i))[:movers_n]
    return counts, tuple((i, movers[i]) for i in top)


def minute_windows(raw: Mapping[Any, Any], now_ms: int) -> dict[str, dict[str, int]]:
    """Per-type counts of the last 1, 10 and 60 minutes (the current minute included)."""
    current = now_ms - now_ms % MINUTE_MS
    out: dict[str, dict[str, int]] = {w: defaultdict(int) for w in WINDOWS_MIN}
    for f, v in raw.items():
        minute, etype = KeyLayout.parse_item_field(_text(f))
        age = (current - minute) // MINUTE_MS
        for w, span in WINDOWS_MIN.items():
            if 0 <= age < span or minute > current:
                out[w][etype] += int(v)
    return {w: {ALL_TYPES: 0, **c} for w, c in out.items()}


# One round trip for a feed: the user's hash, the newest trending window and the speed counts
# summed over the buckets since the as-of, inside Redis: per candidate (ARGV[4], newline-separated,
# aligned; false where no bucket holds it) and per mover (each bucket's ARGV[3] most engaged,
# totals in first-seen order; Python picks the top, as `merge_bucket_replies` does). Buckets that
# do not exist are skipped. One JSON string comes back (cheap to parse, unlike hundreds of RESP
# lines). The trending key is found inside the script from `trending:latest`, which a single
# (non-cluster) Redis allows.
SNAPSHOT_LUA = """
local out = {}
local u = redis.call('HMGET', KEYS[1], 'recent', 'fresh')
out.recent = u[1] or cjson.null
out.fresh = u[2] or cjson.null
local latest = redis.call('GET', KEYS[2])
out.trending_end = latest and tonumber(latest) or cjson.null
local trending = {}
if latest then
  local t = redis.call('ZREVRANGE', ARGV[1] .. latest, 0, tonumber(ARGV[2]) - 1, 'WITHSCORES')
  for j = 1, #t, 2 do trending[#trending + 1] = {t[j], tonumber(t[j + 1])} end
end
out.trending = trending
local cands = {}
for id in string.gmatch(ARGV[4], '[^\\n]+') do cands[#cands + 1] = id end
local n = #cands
local counts = {}
for i = 1, n do counts[i] = false end
local totals, order = {}, {}
for b = 3, #KEYS do
  if redis.call('EXISTS', KEYS[b]) == 1 then
    local top = redis.call('ZREVRANGE', KEYS[b], 0, tonumber(ARGV[3]) - 1, 'WITHSCORES')
    for j = 1, #top, 2 do
      local m = top[j]
      if totals[m] == nil then
        totals[m] = 0
        order[#order + 1] = m
      end
      totals[m] = totals[m] + tonumber(top[j + 1])
    end
    if n > 0 then
      local scores = redis.call('ZMSCORE', KEYS[b], unpack(cands))
      for i = 1, n do
        if scores[i] then counts[i] = (counts[i] or 0) + tonumber(scores[i]) end
      end
    end
  end
end
out.counts = counts
local movers = {}
for j = 1, #order do movers[j] = {order[j], totals[order[j]]} end
out.movers = movers
return cjson.encode(out)
"""


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []  # cjson encodes an empty table as {}


def decode_snapshot(reply: dict[str, Any], candidates: Sequence[str], movers_n: int) -> SpeedSnapshot:
    """The SpeedSnapshot of one decoded SNAPSHOT_LUA reply."""
    recent, fresh = parse_user(reply.get("recent"), reply.get("fresh"))
    trending = tuple((str(m), float(sc)) for m, sc in _list(reply.get("trending")))
    summed = _list(reply.get("counts"))
    if len(summed) != len(candidates):
        raise ValueError(f"the snapshot script counted {len(summed)} of {len(candidates)} candidates")
    counts = {c: int(v) for c, v in zip(candidates, summed, strict=True) if v is not False}
    totals = {str(m): int(t) for m, t in _list(reply.get("movers"))}
    counts, movers = with_movers(counts, totals, movers_n)
    end = reply.get("trending_end")
    return SpeedSnapshot(
        True, counts, movers, recent, fresh, trending, int(end) if trending and end else None
    )


_SNAPSHOT_SHA = hashlib.sha1(SNAPSHOT_LUA.encode()).hexdigest()


class SpeedView:
    """Async Redis reader of the speed signals; connects in `open()`."""

    def __init__(self, settings: Settings, retry_after_s: float = 0.5):
        self._settings = settings
        self._layout = KeyLayout(settings.redis.key_prefix)
        self._client: Any = None
        self._retry_after_s = retry_after_s
        self._down_until = 0.0
        self._trending_prefix = self._layout.trending(0).removesuffix("0")  # + window end = its key
        self._feed_conn: RespConnection | None = None

    async def open(self) -> None:
        import redis.asyncio as aioredis

        r = self._settings.redis
        budget = r.socket_timeout_ms / 1000
        self._client = aioredis.Redis(
            host=r.host,
            port=r.port,
            db=r.db,
            socket_timeout=budget,
            socket_connect_timeout=budget,
            retry_on_timeout=False,
        )
        self._feed_conn = RespConnection(r.host, r.port, r.db, budget)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        if self._feed_conn is not None:
            self._feed_conn.close()

    def _errors(self) -> tuple[type[BaseException], ...]:
        import redis

        return (redis.RedisError, RespError, OSError, TimeoutError, ValueError)

    async def _run(self, pipe: Any) -> list[Any] | None:
        """Execute a pipeline; None (and back off) on any failure or timeout."""
        if time.monotonic() < self._down_until:
            return None
        try:
            return list(await pipe.execute())
        except self._errors() as e:
            self._down_until = time.monotonic() + self._retry_after_s
            log.warning("redis read failed, serving without the speed view: %s", type(e).__name__)
            return None

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except self._errors():
            return False

    async def snapshot(
        self, user_id: str, as_of_ms: int, now_ms: int, candidates: Sequence[str]
    ) -> SpeedSnapshot:
        """The user's signals, trending items and the speed counts of candidates and movers."""
        s = self._settings.serving
        buckets = buckets_since(as_of_ms, now_ms, self._settings.batch.bucket_s, s.speed_buckets_max)
        lay = self._layout
        # the candidates travel as one newline-joined argument (ids never hold one: ID_PATTERN):
        # packing 150 arguments cost more than the script itself
        args = (self._trending_prefix, s.trending_n, s.speed_movers_n, "\n".join(candidates))
        keys = [lay.user(user_id), lay.trending_latest(), *(lay.bucket(b) for b in buckets)]
        reply = await self._eval(keys, args)
        if reply is None:
            return SpeedSnapshot.unavailable()
        try:
            return decode_snapshot(reply, candidates, s.speed_movers_n)
        except (ValueError, TypeError, KeyError) as e:
            log.warning("unreadable snapshot reply, serving without the speed view: %s", e)
            return SpeedSnapshot.unavailable()

    async def _eval(self, keys: list[str], args: tuple[Any, ...]) -> Any:
        """Run the snapshot script (EVALSHA; EVAL when Redis lacks it); None on failure or timeout."""
        if time.monotonic() < self._down_until or self._feed_conn is None:
            return None
        conn = self._feed_conn
        try:
            try:
                raw = await conn.call("EVALSHA", _SNAPSHOT_SHA, len(keys), *keys, *args)
            except RespError as e:
                if not str(e).startswith("NOSCRIPT"):
                    raise
                raw = await conn.call("EVAL", SNAPSHOT_LUA, len(keys), *keys, *args)
            return orjson.loads(raw)
        except self._errors() as e:
            self._down_until = time.monotonic() + self._retry_after_s
            log.warning("redis read failed, serving without the speed view: %s", type(e).__name__)
            return None

    async def trending(self, k: int) -> tuple[int | None, list[tuple[str, float]]] | None:
        """(window end, top k) of the newest trending window; None when Redis failed."""
        latest = await self._run(self._client.pipeline(transaction=False).get(self._layout.trending_latest()))
        if latest is None:
            return None
        if latest[0] is None:
            return None, []
        end = int(latest[0])
        pipe = self._client.pipeline(transaction=False).zrevrange(self._layout.trending(end), 0, k - 1, True)
        got = await self._run(pipe)
        if got is None:
            return None
        return end, [(_text(m), float(sc)) for m, sc in got[0]]

    async def item(self, item_id: str, as_of_ms: int, now_ms: int) -> tuple[dict[str, int], dict] | None:
        """(per-type counts since the as-of, per-window per-type minute counts); None on failure."""
        pipe = self._client.pipeline(transaction=False)
        pipe.hgetall(self._layout.item(item_id))
        pipe.hgetall(self._layout.item_minutes(item_id))
        replies = await self._run(pipe)
        if replies is None:
            return None
        since: dict[str, int] = defaultdict(int)
        for f, v in replies[0].items():
            bucket, etype = KeyLayout.parse_item_field(_text(f))
            if bucket >= as_of_ms:
                since[etype] += int(v)
        return {ALL_TYPES: 0, **since}, minute_windows(replies[1], now_ms)

    async def signals_for(
        self, users: list[str], items: list[str], as_of_ms: int, now_ms: int
    ) -> tuple[dict[str, tuple[Interaction, ...]], dict[str, int]] | None:
        """Recent interactions of several users and speed counts of several items, one round trip."""
        s = self._settings
        buckets = buckets_since(as_of_ms, now_ms, s.batch.bucket_s, s.serving.speed_buckets_max)
        pipe = self._client.pipeline(transaction=False)
        for u in users:
            pipe.hget(self._layout.user(u), RECENT_FIELD)
        for b in buckets:
            if items:
                pipe.zmscore(self._layout.bucket(b), items)
        replies = await self._run(pipe)
        if replies is None:
            return None
        recent = {u: parse_user(raw, None)[0] for u, raw in zip(users, replies[: len(users)], strict=True)}
        counts: dict[str, int] = defaultdict(int)
        for reply in replies[len(users) :]:
            for item, score in zip(items, reply, strict=True):
                if score is not None:
                    counts[item] += int(score)
        return recent, dict(counts)

    async def user(self, user_id: str) -> tuple[tuple[Interaction, ...], FreshCandidates | None] | None:
        """The user's recent interactions and fresh candidates; None when Redis failed."""
        pipe = self._client.pipeline(transaction=False).hmget(
            self._layout.user(user_id), [RECENT_FIELD, FRESH_FIELD]
        )
        replies = await self._run(pipe)
        return None if replies is None else parse_user(*replies[0])
