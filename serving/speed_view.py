"""Reads of the speed view in Redis: one pipelined round trip per request, with a time budget."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from lambdastack.keys import ALL_TYPES, KeyLayout, bucket_start
from lambdastack.settings import Settings


@dataclass(frozen=True)
class SpeedCounts:
    counts: dict[str, int]  # item -> events in buckets at or after the batch as-of
    fresh: list[str]  # items engaged since the as-of, most engaged first


def buckets_since(as_of_ms: int, now_ms: int, bucket_s: int, max_buckets: int) -> list[int]:
    """Bucket starts from the as-of (or the oldest of the newest `max_buckets`) up to now."""
    size = bucket_s * 1000
    last = bucket_start(now_ms, bucket_s) + size  # events slightly ahead of this clock
    first = max(bucket_start(as_of_ms, bucket_s) if as_of_ms > 0 else 0, last - (max_buckets - 1) * size)
    return list(range(first, last + 1, size))


class SpeedView:
    """Async Redis reader of the speed signals; connects in `open()`."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._layout = KeyLayout(settings.redis.key_prefix)
        self._client: Any = None

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

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def ping(self) -> bool:
        import redis

        try:
            return bool(await self._client.ping())
        except (redis.RedisError, OSError):
            return False

    async def counts(self, as_of_ms: int, now_ms: int, candidates: list[str], fresh_n: int) -> SpeedCounts:
        """Speed totals of the candidates and the freshest items; raises redis errors."""
        s = self._settings
        buckets = buckets_since(as_of_ms, now_ms, s.batch.bucket_s, s.serving.speed_buckets_max)
        pipe = self._client.pipeline(transaction=False)
        for b in buckets:
            pipe.zrevrange(self._layout.bucket(b), 0, fresh_n - 1, withscores=True)
            if candidates:
                pipe.zmscore(self._layout.bucket(b), candidates)
        replies = await pipe.execute()
        counts: dict[str, int] = defaultdict(int)
        fresh_totals: dict[str, int] = defaultdict(int)
        step = 2 if candidates else 1
        for n in range(len(buckets)):
            for member, score in replies[n * step]:
                item = member.decode() if isinstance(member, bytes) else str(member)
                fresh_totals[item] += int(score)
            if candidates:
                for item, score in zip(candidates, replies[n * step + 1], strict=True):
                    if score is not None:
                        counts[item] += int(score)
        for item, total in fresh_totals.items():
            counts.setdefault(item, total)
        fresh = sorted(fresh_totals, key=lambda i: (-fresh_totals[i], i))[:fresh_n]
        return SpeedCounts(dict(counts), fresh)

    async def item_counts(self, item_id: str, as_of_ms: int) -> dict[str, int]:
        """Per-type counts of one item since the as-of (ALL_TYPES under "*")."""
        raw = await self._client.hgetall(self._layout.item(item_id))
        out: dict[str, int] = defaultdict(int)
        for f, v in raw.items():
            bucket, etype = KeyLayout.parse_item_field(f.decode() if isinstance(f, bytes) else f)
            if bucket >= as_of_ms:
                out[etype] += int(v)
        out.setdefault(ALL_TYPES, 0)
        return dict(out)
