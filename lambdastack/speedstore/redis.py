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

# A sorted set's writes with totals (Write.totals), atomically: KEYS[1] the set, KEYS[2..] its
# totals; ARGV[1] the totals' TTL, then (member, new score or '' to remove) pairs. Each write adds
# the change of the member's score to every total (a member whose total falls to 0 or below leaves
# it); a total the script left without a TTL gets one, so no total outlives its writer unbounded.
TRACKED_LUA = """
for j = 2, #ARGV, 2 do
  local m, new = ARGV[j], ARGV[j + 1]
  local old = tonumber(redis.call('ZSCORE', KEYS[1], m) or '0')
  local v = 0
  if new == '' then
    redis.call('ZREM', KEYS[1], m)
  else
    v = tonumber(new)
    redis.call('ZADD', KEYS[1], new, m)
  end
  local change = v - old
  if change ~= 0 then
    for k = 2, #KEYS do
      if tonumber(redis.call('ZINCRBY', KEYS[k], change, m)) <= 0 then redis.call('ZREM', KEYS[k], m) end
    end
  end
end
for k = 2, #KEYS do
  if redis.call('TTL', KEYS[k]) == -1 then redis.call('EXPIRE', KEYS[k], ARGV[1]) end
end
return 0
"""


class RedisSpeedStore(SpeedStore):
    """Applies Writes in one MULTI/EXEC pipeline per batch, with a TTL on every key touched."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic):
        self._settings = settings
        self._plan = FeedPlan.from_settings(settings)
        self._client: Any = None
        self._script: Any = None
        self._tracked_sha = ""
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
        self._ttl_set.clear()  # a reopened store may be a Redis restarted empty: every TTL again
        self._client = redis.Redis(host=r.host, port=r.port, db=r.db, socket_timeout=timeout_s)
        self._client.ping()
        self._script = self._client.register_script(FEED_LUA)  # EVALSHA, EVAL on NOSCRIPT
        self._tracked_sha = self._client.script_load(TRACKED_LUA)  # EVALSHA inside MULTI
        return self

    def apply(self, writes: Sequence[Write]) -> None:
        """One MULTI/EXEC: the HSETs and ZADDs of a key are sent as one command, the sorted-set
        writes with totals of a key as one TRACKED_LUA call (a write of another kind to the same
        key, or to one of its totals, first sends what came before it, so the order of writes per
        key is kept)."""
        import redis

        try:
            self._apply(writes)
        except redis.exceptions.NoScriptError:
            # a restarted Redis lost TRACKED_LUA: load it again and send the batch again (its
            # writes are absolute, and a tracked write applied twice changes no total the second time)
            self._tracked_sha = self._client.script_load(TRACKED_LUA)
            self._apply(writes)

    def _apply(self, writes: Sequence[Write]) -> None:
        pipe = self._client.pipeline(transaction=True)
        batch = _Batch(pipe, self._tracked_sha, self._settings.redis.signal_ttl_s)
        for w in writes:
            batch.add(w)
        batch.flush_all()
        self._expire(pipe, batch.ttls, batch.removed)

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

    def transient_errors(self) -> tuple[type[Exception], ...]:
        import redis

        return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

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

    def zsets(self, keys: list[str]) -> dict[str, dict[str, float]]:
        """Every member and score of each sorted set, in one round trip."""
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.zrange(key, 0, -1, withscores=True)
        got = pipe.execute()
        return {k: {text(m): float(sc) for m, sc in z} for k, z in zip(keys, got, strict=True)}

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


class _Batch:
    """The commands of one `apply`, grouped per key in a pipeline, and the TTLs they need."""

    def __init__(self, pipe: Any, tracked_sha: str, default_ttl_s: int):
        self.pipe, self._sha, self._ttl_s = pipe, tracked_sha, default_ttl_s
        self.ttls: dict[str, int] = {}
        self.removed: set[str] = set()  # keys a removal may have deleted: their TTL is not remembered
        self._hashes: dict[str, dict[str, Any]] = {}
        self._zsets: dict[str, dict[str, float]] = {}
        self._groups: dict[str, tuple[tuple[str, ...], list[Any]]] = {}  # key -> (totals, pairs)
        self._writers_of: dict[str, set[str]] = {}  # a total -> keys whose groups add to it

    def flush(self, key: str) -> None:
        """Send what is pending for `key`, and the groups that add to it as a total."""
        for writer in sorted(self._writers_of.pop(key, ())):
            self._flush_group(writer)
        self._flush_group(key)
        if (fields := self._hashes.pop(key, None)) is not None:
            self.pipe.hset(key, mapping=fields)
        if (members := self._zsets.pop(key, None)) is not None:
            self.pipe.zadd(key, members)

    def _flush_group(self, key: str) -> None:
        if (group := self._groups.pop(key, None)) is not None:
            totals, pairs = group
            for total in totals:
                self._writers_of.get(total, set()).discard(key)
            self.pipe.evalsha(self._sha, 1 + len(totals), key, *totals, self._ttl_s, *pairs)

    def flush_all(self) -> None:
        for key in [*self._groups, *self._hashes, *self._zsets]:
            self.flush(key)

    def _track(self, w: Write) -> None:
        group = self._groups.get(w.key)
        if group is not None and group[0] != w.totals:
            self._flush_group(w.key)
        if w.key in self._hashes or w.key in self._zsets or w.key in self._writers_of:
            self.flush(w.key)
        for total in w.totals:
            if total in self._hashes or total in self._zsets or total in self._groups:
                self.flush(total)
            self._writers_of.setdefault(total, set()).add(w.key)
            self.ttls[total] = max(self.ttls.get(total, 0), self._ttl_s)
        pairs = self._groups.setdefault(w.key, (w.totals, []))[1]
        pairs += [w.member, "" if w.op == "zrem" else float(w.value or 0)]
        if w.op == "zrem":
            self.removed.add(w.key)
        else:
            self.ttls[w.key] = max(self.ttls.get(w.key, 0), w.ttl_s or self._ttl_s)

    def add(self, w: Write) -> None:
        if w.totals and w.op in ("zadd", "zrem"):
            self._track(w)
            return
        if w.key in self._groups or w.key in self._writers_of:
            self.flush(w.key)
        if w.op == "hset":
            self._hashes.setdefault(w.key, {})[w.member] = stored_value(w)
        elif w.op == "zadd":
            self._zsets.setdefault(w.key, {})[w.member] = float(w.value or 0)
        elif w.op == "ztrim":  # keeps at least one member: the key and its TTL stay
            self.flush(w.key)
            self.pipe.zremrangebyrank(w.key, 0, -trim_kept(w) - 1)
            return
        else:
            self.flush(w.key)
            self.removed.add(w.key)
            if w.op == "hdel":
                self.pipe.hdel(w.key, w.member)
            elif w.op == "zrem":
                self.pipe.zrem(w.key, w.member)
            elif w.op == "del":
                self.pipe.delete(w.key)
            elif w.op == "set":
                self.pipe.set(w.key, stored_value(w))
            if w.op != "set":
                return  # a removal keeps the key's TTL (set with the key's last value)
        self.ttls[w.key] = max(self.ttls.get(w.key, 0), w.ttl_s or self._ttl_s)
