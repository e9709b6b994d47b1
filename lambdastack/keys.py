"""The Redis key layout of the speed view. Every key starts with `redis.key_prefix`.

- `{p}:item:{item_id}` HASH, field `{bucket_ms}:{type}` -> count of that type in that
  event-time bucket, and field `{bucket_ms}:*` -> count of all types. Absolute values.
- `{p}:bucket:{bucket_ms}` ZSET, member item_id, score = count of all types in the bucket.

Buckets are event-time intervals of `batch.bucket_s` starting at `bucket_ms`. A batch version
as-of T (aligned to a bucket start) holds every event before T, so the serving layer adds
exactly the buckets with `bucket_ms >= T`: no event is counted twice, none is missed.
"""

from __future__ import annotations

from dataclasses import dataclass

ALL_TYPES = "*"


@dataclass(frozen=True, slots=True)
class SignalKey:
    """Identity of one absolute speed count: (item, bucket, type or ALL_TYPES)."""

    item_id: str
    bucket_ms: int
    type: str


@dataclass(frozen=True, slots=True)
class KeyLayout:
    prefix: str

    def item(self, item_id: str) -> str:
        return f"{self.prefix}:item:{item_id}"

    def bucket(self, bucket_ms: int) -> str:
        return f"{self.prefix}:bucket:{bucket_ms}"

    @staticmethod
    def item_field(bucket_ms: int, etype: str) -> str:
        return f"{bucket_ms}:{etype}"

    @staticmethod
    def parse_item_field(field: str) -> tuple[int, str]:
        bucket, _, etype = field.partition(":")
        return int(bucket), etype


def bucket_start(time_ms: int, bucket_s: int) -> int:
    """Start (epoch ms) of the bucket holding `time_ms`."""
    size = bucket_s * 1000
    return time_ms - time_ms % size
