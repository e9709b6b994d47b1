"""The speed-store interface: the loader applies absolute writes, readers get views back.

Writes are plain `Write` records (what `speed.signals`, `speed.trending`, `speed.drift`,
`speed.user_writes` and `speed.totals` compute from the Flink records); none increments by a
value of its own, so applying the same writes again leaves the store as it was. (A sorted-set
write with `totals` adds the change it makes to its member's score to those totals: the change
of a replayed write is 0.) Reads return the views of `lambdastack.speedview`.
Two implementations: `redis.RedisSpeedStore` (the loader's, and the feed's script) and
`memory.MemorySpeedStore` (unit tests and the evaluation), equal view for equal writes
(tests/unit/test_speedstore.py, tests/integration/test_speed_view.py).

The API reads the same Redis keys through `serving.speed_view.SpeedView`, the async twin of
RedisSpeedStore's reads: it sends the same script with the same `FeedPlan` and decodes with the
same functions, on the API's event loop, with a time budget; only the transport differs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

from lambdastack.speedview import ItemView, SpeedRead, TrendingView, UserView

OPS = ("hset", "hdel", "zadd", "zrem", "ztrim", "set", "del")


@dataclass(frozen=True, slots=True)
class Write:
    """One store operation: op in OPS; `value` for sets (an int, float or str); `ttl_s`
    overrides the default TTL of the key. `ztrim` keeps the `value` members of a sorted set with
    the highest scores (ties: the greater members, as Redis ranks them) and removes the rest
    (ZREMRANGEBYRANK 0 -value-1).

    `totals` (zadd and zrem only): sorted sets that each get the change this write makes to the
    member's score (its new score, 0 when removed, minus its old one, 0 when it had none) added
    to the member's score in them, in the same atomic step; a member whose total falls to 0 or
    below is removed from it. Writing the same absolute value again changes no total. A total
    gets the default TTL, like every key a write touches."""

    op: str
    key: str
    member: str = ""
    value: float | str | None = None
    ttl_s: int | None = None
    totals: tuple[str, ...] = ()


def stored_value(w: Write) -> int | float | str:
    """The value an hset or set stores: a whole float as an int (Redis keeps "2", not "2.0"),
    nothing as 0 (hset) or "" (set)."""
    v = w.value
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if v is None:
        return 0 if w.op == "hset" else ""
    return v


def trim_kept(w: Write) -> int:
    """How many members a `ztrim` keeps: at least 1 (a trim never deletes its key)."""
    if not isinstance(w.value, int | float) or w.value < 1:
        raise ValueError(f"ztrim of {w.key!r} must keep at least 1 member, not {w.value!r}")
    return int(w.value)


class SpeedStore(ABC):
    """The speed view's storage. `open()` connects (never the constructor); reads of a store
    that is up never fail on missing keys (an empty view)."""

    def open(self) -> Self:
        return self

    def close(self) -> None:
        return None

    def transient_errors(self) -> tuple[type[Exception], ...]:
        """The errors of a store that is away for a while (the loader waits and retries them)."""
        return ()

    @abstractmethod
    def apply(self, writes: Sequence[Write]) -> None:
        """Apply a batch of writes in order, atomically where the backend can."""

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """A string's value (the loader reads `trending:latest` back on start)."""

    @abstractmethod
    def hget(self, key: str, field: str) -> bytes | None:
        """One field of a hash."""

    @abstractmethod
    def fields(self, keys: list[str]) -> dict[str, list[str]]:
        """The field names of each hash (the loader prunes old minutes with them)."""

    @abstractmethod
    def zsets(self, keys: list[str]) -> dict[str, dict[str, float]]:
        """Every member and score of each sorted set, {} for an absent one (the loader starts a
        live total from the buckets with them)."""

    @abstractmethod
    def user(self, user_id: str) -> UserView:
        """The user's recent interactions and fresh candidates."""

    @abstractmethod
    def item(self, item_id: str, as_of_ms: int, now_ms: int) -> ItemView:
        """An item's per-type counts since the as-of and its minute windows."""

    @abstractmethod
    def read_feed(self, user_id: str, as_of_ms: int, now_ms: int, candidates: Sequence[str]) -> SpeedRead:
        """The feed's one read: the user's signals, trending, and the counts of candidates and movers."""

    @abstractmethod
    def trending(self, k: int) -> TrendingView:
        """(window end, top k) of the newest trending window."""
