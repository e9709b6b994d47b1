"""How the loader tells a Redis that still holds the speed view from one that lost it, and how it
waits out a Redis that is away: the loader's pure rules, unit-tested without a Redis.

The epoch key (`{p}:speed:epoch`, lambdastack.keys) is written by the loader only, with a TTL of
years, and never by anything else:
- `rebuilding <token>` while the loader replays the signals and users topics from their earliest
  offset (they are compacted, so they hold the newest absolute value of every key);
- `ready <token>` once the replay reached the end offsets the topics had when it started.

A missing key means Redis lost what the loader wrote (restarted empty, flushed, evicted): the
loader replays from the earliest offset. `rebuilding` found on start means a replay was cut short
(the loader stopped or crashed in it): it starts again. So the speed view is rebuilt to the exact
state whatever happened to Redis, the offsets the loader committed notwithstanding.

Every `speed.epoch_check_s` the loader also writes its heartbeat (`heartbeat_writes`): when it
looked, how far behind its topics it is, whether it replays; the API's `/ready` and metrics and
`stack status` read it.

A Redis that is away (refused connections, timeouts) is retried with `Backoff`: the first wait
`speed.store_retry_first_s`, doubling to at most `speed.store_retry_max_s`; the loader never exits
for it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from enum import Enum

from lambdastack.keys import KeyLayout
from lambdastack.speedstore.base import Write

EPOCH_TTL_S = 10 * 365 * 24 * 3600  # effectively none: the key must outlive every other


class Epoch(Enum):
    MISSING = "missing"
    REBUILDING = "rebuilding"
    READY = "ready"


def read_epoch(raw: bytes | str | None) -> tuple[Epoch, str]:
    """The state and token an epoch key's value says (anything unreadable: MISSING, so a replay
    follows)."""
    if raw is None:
        return Epoch.MISSING, ""
    word, _, token = (raw.decode(errors="replace") if isinstance(raw, bytes) else raw).partition(" ")
    try:
        return Epoch(word), token
    except ValueError:
        return Epoch.MISSING, ""


def epoch_of(raw: bytes | str | None) -> Epoch:
    """The state an epoch key's value says."""
    return read_epoch(raw)[0]


def epoch_write(layout: KeyLayout, state: Epoch, token: str) -> Write:
    return Write("set", layout.speed_epoch(), value=f"{state.value} {token}", ttl_s=EPOCH_TTL_S)


def heartbeat_writes(layout: KeyLayout, beat: dict[str, int], ttl_s: int) -> list[Write]:
    """The loader's heartbeat (`lambdastack.speed_health.heartbeat`) as writes of `{p}:speed:loader`:
    what the API's `/ready` and metrics and `stack status` read to tell a dead or lagging speed layer."""
    key = layout.speed_loader()
    return [Write("hset", key, name, value, ttl_s=ttl_s) for name, value in beat.items()]


def lag_of(positions: Iterable[tuple[int, int, int]]) -> int | None:
    """Records not yet read over (position, low, high) per partition; None when a partition's end is
    unknown (negative). A partition with nothing read yet lags by all it holds."""
    total = 0
    for position, low, high in positions:
        if high < 0:
            return None
        total += max(0, high - (position if position >= 0 else max(low, 0)))
    return total


def new_token() -> str:
    return uuid.uuid4().hex[:12]


def caught_up(positions: Iterable[tuple[int, int, int]]) -> bool:
    """Whether a replay from the earliest offset is complete: for each assigned partition,
    (position, low, high) with `high` the end offset when the replay started and `position` the
    next offset to read (negative while nothing was read): every one at or past its end, or empty."""
    return all(high <= low or position >= high for position, low, high in positions)


class Backoff:
    """Waits after consecutive failures: `first_s`, then twice the previous, at most `max_s`."""

    def __init__(self, first_s: float, max_s: float):
        self._first_s, self._max_s = first_s, max(first_s, max_s)
        self._next_s = first_s
        self.failures = 0  # consecutive, since the last reset

    def next_wait(self) -> float:
        wait, self._next_s = self._next_s, min(self._next_s * 2, self._max_s)
        self.failures += 1
        return wait

    def reset(self) -> None:
        self._next_s, self.failures = self._first_s, 0
