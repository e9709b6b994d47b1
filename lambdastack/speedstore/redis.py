"""The speed store in Redis: writes in one MULTI/EXEC pipeline per batch with a TTL on every key
touched, reads with redis-py (the feed's through FEED_LUA, one round trip). The key layout is
`lambdastack.keys`. `redis` is imported in `open()`: importing this module needs no client."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from lambdastack.settings import Settings
from lambdastack.speedstore.base import SpeedStore, Write, stored_value, trim_kept
from lambdastack.speedstore.feedscript import FEED_LUA, FeedPlan
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
    text,
)

# A key's TTL is set with its first write and renewed once this share of it has passed, not on
# every write (an EXPIRE per key per batch was a third of the loader's Redis commands).
EXPIRE_REFRESH = 0.1
TTL_CACHE_MAX = 500_000


class RedisSpeedStore(SpeedStore):
    """Applies Writes in one MULTI/EXEC pipeline per batch, with a TTL on every key touched."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic):
        self._settings = settings
        self._plan = FeedPlan.from_settings(settings)
        self._client: Any = None
        self._script: Any = None
        self._clock = clock
        self._ttl_set: dict[str, tuple[float, int]] = {}  # key -> (when its TTL was set, TTL)

    def _needs_ttl(self, key: str, ttl_s: int, now: float) -> bool:
        """Whether to (re)set a key's TTL: first write, a different TTL, or EXPIRE_REFRESH of it
        passed. A key this writer removed from (HDEL/ZREM may delete it) is forgotten first."""
        last = self._ttl_set.get(key)
        return last is None or last[1] != ttl_s or now - last[0] > ttl_s * EXPIRE_REFRESH

    def open(self) -> RedisSpeedStore:
        import redis

        r = self._settings.redis
        timeout_s = r.loader_socket_timeout_ms / 1000
        self._client = redis.Redis(host=r.host, port=r.port, db=r.db, socket_timeout=timeout_s)
        self._client.ping()
        self._script = self._client.register_script(FEED_LUA)  # EVALSHA, EVAL on NOSCRIPT
        return self

    def apply(self, writes: Sequence[Write]) -> None:
        """One MULTI/EXEC: the HSETs and ZADDs of a key are sent as one command (a removal or trim
        of the same key first sends what came before it, so the order of writes per key is kept)."""
        pipe = self._client.pipeline(transaction=True)
        ttls: dict[str, int] = {}
        hashes: dict[str, dict[str, Any]] = {}
        zsets: dict[str, dict[str, float]] = {}
        removed: set[str] = set()  # keys a removal may have deleted: their TTL is not remembered

        def flush(key: str) -> None:
            if (fields := hashes.pop(key, None)) is not None:
                pipe.hset(key, mapping=fields)
            if (members := zsets.pop(key, None)) is not None:
                pipe.zadd(key, members)

        for w in writes:
            if w.op == "hset":
                hashes.setdefault(w.key, {})[w.member] = stored_value(w)
            elif w.op == "zadd":
                zsets.setdefault(w.key, {})[w.member] = float(w.value or 0)
            elif w.op == "ztrim":  # keeps at least one member: the key and its TTL stay
                flush(w.key)
                pipe.zremrangebyrank(w.key, 0, -trim_kept(w) - 1)
                continue
            else:
                flush(w.key)
                removed.add(w.key)
                if w.op == "hdel":
                    pipe.hdel(w.key, w.member)
                elif w.op == "zrem":
                    pipe.zrem(w.key, w.member)
                elif w.op == "del":
                    pipe.delete(w.key)
                elif w.op == "set":
                    pipe.set(w.key, stored_value(w))
                if w.op != "set":
                    continue  # a removal keeps the key's TTL (set with the key's last value)
            ttls[w.key] = max(ttls.get(w.key, 0), w.ttl_s or self._settings.redis.signal_ttl_s)
        for key in list(hashes) + list(zsets):
            flush(key)
        self._expire(pipe, ttls, removed)

    def _expire(self, pipe: Any, ttls: dict[str, int], removed: set[str]) -> None:
        """Add the EXPIREs that are due to the pipeline and execute it; remember what was set."""
        now = self._clock()
        for key in removed:
            self._ttl_set.pop(key, None)
        renewed = {key: ttl for key, ttl in ttls.items() if self._needs_ttl(key, ttl, now)}
        for key, ttl in renewed.items():
            pipe.expire(key, ttl)
        pipe.execute()
        for key, ttl in renewed.items():
            if key not in removed:
                self._ttl_set[key] = (now, ttl)
        if len(self._ttl_set) > TTL_CACHE_MAX:  # forget what would be renewed anyway
            self._ttl_set = {
                k: (t, ttl) for k, (t, ttl) in self._ttl_set.items() if now - t <= ttl * EXPIRE_REFRESH
            }

    def get(self, key: str) -> bytes | None:
        return self._client.get(key)  # type: ignore[no-any-return]

    def hget(self, key: str, field: str) -> bytes | None:
        return self._client.hget(key, field)  # type: ignore[no-any-return]

    def fields(self, keys: list[str]) -> dict[str, list[str]]:
        """The field names of each hash, in one round trip."""
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.hkeys(key)
        return {k: [f.decode() for f in fs] for k, fs in zip(keys, pipe.execute(), strict=True)}

    def user(self, user_id: str) -> UserView:
        return parse_user(*self._client.hmget(self._plan.layout.user(user_id), [RECENT_FIELD, FRESH_FIELD]))

    def item(self, item_id: str, as_of_ms: int, now_ms: int) -> ItemView:
        lay = self._plan.layout
        pipe = self._client.pipeline(transaction=False)
        pipe.hgetall(lay.item(item_id))
        pipe.hgetall(lay.item_minutes(item_id))
        buckets, minutes = pipe.execute()
        return item_view(buckets, minutes, as_of_ms, now_ms)

    def read_feed(self, user_id: str, as_of_ms: int, now_ms: int, candidates: Sequence[str]) -> SpeedRead:
        keys, args = self._plan.request(user_id, as_of_ms, now_ms, candidates)
        reply = orjson.loads(self._script(keys=keys, args=args))
        return decode_feed_reply(reply, candidates, self._plan.movers_n)

    def trending(self, k: int) -> TrendingView:
        latest = self._client.get(self._plan.layout.trending_latest())
        if latest is None:
            return None, []
        end = int(latest)
        top = self._client.zrevrange(self._plan.layout.trending(end), 0, k - 1, withscores=True)
        return end, [(text(m), float(sc)) for m, sc in top]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
