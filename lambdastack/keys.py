"""The Redis key layout of the speed view. Every key starts with `redis.key_prefix`.

- `{p}:item:{item_id}` HASH, field `{bucket_ms}:{type}` -> count of that type in that
  event-time bucket, and field `{bucket_ms}:*` -> count of all types. Absolute values.
- `{p}:bucket:{bucket_ms}` ZSET, member item_id, score = count of all types in the bucket.
- `{p}:since:{as_of_ms}` ZSET, member item_id, score = count of all types in every bucket at or
  after the as-of (a batch version's): the live total the feed reads, kept by the loader for the
  as-of of CURRENT (and the previous one for a while) as the buckets change (speed.totals).
- `{p}:item:{item_id}:min` HASH, field `{minute_ms}:{type}` (and `{minute_ms}:*`) -> count in that
  event-time minute: the sliding windows (1 min, 10 min, 1 h) are sums of the last minutes.
- `{p}:user:{user_id}` HASH of the user's real-time state (JSON values, see
  `lambdastack.speedview`): `recent` (last N interactions, each with its event time),
  `fresh` (fresh candidates scored by the model, with the view and model versions used).
- `{p}:user:{user_id}:seen` ZSET item_id -> event time (epoch ms) of the user's last interaction
  with it: everything the user interacted with, the newest `speed.seen_max` items kept.
- `{p}:trending:{window_end_ms}` ZSET item_id -> trending score of the window ending there;
  `{p}:trending:latest` STRING -> window_end_ms of the newest complete window.
- `{p}:drift` HASH feature -> PSI against the batch baseline, plus `alert` (0/1),
  `window_end_ms`, `view_version` and `events` (rows in the window).
- `{p}:speed:epoch` STRING, written by the loader only: `ready <token>` or `rebuilding <token>`;
  missing when Redis lost what the loader wrote, which then replays its topics (speed.store_epoch).
- `{p}:speed:loader` HASH, the loader's heartbeat: `beat_ms` (epoch ms), `lag` (records of its
  topics not loaded yet, -1 unknown), `replaying` (0/1).

Buckets are event-time intervals of `batch.bucket_s` starting at `bucket_ms`. A batch version
as-of T (aligned to a bucket start) holds every event before T, so the serving layer adds
exactly the buckets with `bucket_ms >= T`: no event is counted twice, none is missed.
"""

from __future__ import annotations

from dataclasses import dataclass

ALL_TYPES = "*"


@dataclass(frozen=True, slots=True)
class KeyLayout:
    prefix: str

    def item(self, item_id: str) -> str:
        return f"{self.prefix}:item:{item_id}"

    def bucket(self, bucket_ms: int) -> str:
        return f"{self.prefix}:bucket:{bucket_ms}"

    def since(self, as_of_ms: int) -> str:
        return f"{self.prefix}:since:{as_of_ms}"

    def item_minutes(self, item_id: str) -> str:
        return f"{self.prefix}:item:{item_id}:min"

    def user(self, user_id: str) -> str:
        return f"{self.prefix}:user:{user_id}"

    def seen(self, user_id: str) -> str:
        return f"{self.prefix}:user:{user_id}:seen"

    def trending(self, window_end_ms: int) -> str:
        return f"{self.prefix}:trending:{window_end_ms}"

    def trending_latest(self) -> str:
        return f"{self.prefix}:trending:latest"

    def drift(self) -> str:
        return f"{self.prefix}:drift"

    def speed_epoch(self) -> str:
        return f"{self.prefix}:speed:epoch"

    def speed_loader(self) -> str:
        return f"{self.prefix}:speed:loader"

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
