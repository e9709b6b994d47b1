"""Reads of the speed view in Redis: one pipelined round trip per feed, within a time budget.

The async twin of `lambdastack.speedstore.redis.RedisSpeedStore`'s reads, on the API's event
loop: the same feed script and `FeedPlan`, the same decoding (`lambdastack.speedview`); the
predict route's signals are one script too (SIGNALS_LUA: the same live counts as the feed's). Every
read degrades instead of failing: when Redis is down, slower than `redis.socket_timeout_ms` or
answers with something unreadable, the reader returns `SpeedRead.unavailable()` and for
`retry_after_s` does not try again, so a dead Redis costs requests nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import orjson

from lambdastack.keys import KeyLayout
from lambdastack.settings import Settings
from lambdastack.speed_health import DriftReport, drift_report
from lambdastack.speedstore.feedscript import FEED_LUA, FEED_SHA, SIGNALS_LUA, SIGNALS_SHA, FeedPlan
from lambdastack.speedview import (
    FRESH_FIELD,
    RECENT_FIELD,
    Interaction,
    ItemView,
    SpeedRead,
    TrendingView,
    UserView,
    decode_feed_reply,
    decode_signals_reply,
    item_view,
    parse_user,
    text,
)
from serving.resp import RespConnection, RespError

log = logging.getLogger("lambdastack.serving")


class SpeedView:
    """Async Redis reader of the speed signals; connects in `open()`."""

    def __init__(self, settings: Settings, retry_after_s: float = 0.5):
        self._settings = settings
        self._layout = KeyLayout(settings.redis.key_prefix)
        self._plan = FeedPlan.from_settings(settings)
        self._client: Any = None
        self._retry_after_s = retry_after_s
        self._down_until = 0.0
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

    async def loader_heartbeat(self) -> dict[bytes, bytes] | None:
        """The loader's heartbeat hash (lambdastack.speed_health; {} when absent); None when Redis
        failed."""
        replies = await self._run(
            self._client.pipeline(transaction=False).hgetall(self._layout.speed_loader())
        )
        return None if replies is None else dict(replies[0])

    async def drift(self) -> DriftReport | None:
        """The newest drift window the loader wrote; None when Redis failed."""
        replies = await self._run(self._client.pipeline(transaction=False).hgetall(self._layout.drift()))
        return None if replies is None else drift_report(replies[0])

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except self._errors():
            return False

    async def read_feed(
        self, user_id: str, as_of_ms: int, now_ms: int, candidates: Sequence[str]
    ) -> SpeedRead:
        """The user's signals, trending items and the speed counts of candidates and movers."""
        keys, args = self._plan.request(user_id, as_of_ms, now_ms, candidates)
        reply = await self._eval(FEED_SHA, FEED_LUA, keys, args)
        if reply is None:
            return SpeedRead.unavailable()
        try:
            return decode_feed_reply(reply, candidates, self._plan.movers_n)
        except (ValueError, TypeError, KeyError) as e:
            log.warning("unreadable feed reply, serving without the speed view: %s", e)
            return SpeedRead.unavailable()

    async def _eval(self, sha: str, script: str, keys: list[str], args: tuple[Any, ...]) -> Any:
        """Run a script (EVALSHA; EVAL when Redis lacks it); None on failure or timeout."""
        if time.monotonic() < self._down_until or self._feed_conn is None:
            return None
        conn = self._feed_conn
        try:
            try:
                raw = await conn.call("EVALSHA", sha, len(keys), *keys, *args)
            except RespError as e:
                if not str(e).startswith("NOSCRIPT"):
                    raise
                raw = await conn.call("EVAL", script, len(keys), *keys, *args)
            return orjson.loads(raw)
        except self._errors() as e:
            self._down_until = time.monotonic() + self._retry_after_s
            log.warning("redis read failed, serving without the speed view: %s", type(e).__name__)
            return None

    async def trending(self, k: int) -> TrendingView | None:
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
        return end, [(text(m), float(sc)) for m, sc in got[0]]

    async def item(self, item_id: str, as_of_ms: int, now_ms: int) -> ItemView | None:
        """(per-type counts since the as-of, per-window per-type minute counts); None on failure."""
        pipe = self._client.pipeline(transaction=False)
        pipe.hgetall(self._layout.item(item_id))
        pipe.hgetall(self._layout.item_minutes(item_id))
        replies = await self._run(pipe)
        if replies is None:
            return None
        return item_view(replies[0], replies[1], as_of_ms, now_ms)

    async def signals_for(
        self, users: list[str], items: list[str], as_of_ms: int, now_ms: int
    ) -> tuple[dict[str, tuple[Interaction, ...]], dict[str, int]] | None:
        """Recent interactions of several users and the live counts of several items (the feed's:
        the as-of's total, else the newest buckets), one round trip; None when Redis failed."""
        keys, args = self._plan.signals_request(users, items, as_of_ms, now_ms)
        reply = await self._eval(SIGNALS_SHA, SIGNALS_LUA, keys, args)
        if reply is None:
            return None
        try:
            recent, counts, _ = decode_signals_reply(reply, users, items)
        except (ValueError, TypeError, KeyError) as e:
            log.warning("unreadable signals reply, predicting without the speed view: %s", e)
            return None
        return recent, counts

    async def user(self, user_id: str) -> UserView | None:
        """The user's recent interactions and fresh candidates; None when Redis failed."""
        pipe = self._client.pipeline(transaction=False).hmget(
            self._layout.user(user_id), [RECENT_FIELD, FRESH_FIELD]
        )
        replies = await self._run(pipe)
        return None if replies is None else parse_user(*replies[0])
