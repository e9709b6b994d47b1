"""The one follower of the published batch version (CURRENT), for every long-running process.

A follower holds one value built from the current version (`load` of its lambdastack.published
reader) and replaces it in one assignment when CURRENT names another version (publish, promote
or rollback), so a caller sees the old value or the new one, never a mix. A failed load (a corrupt
or incompatible model, a view that cannot be read) keeps the old value and is retried with
backoff: the first retry `check_every_s` after the failure, each later one after twice the
previous wait, at most `retry_max_s`; a newer CURRENT is loaded at once. `failures` counts the
failed loads and `failing` names the version that fails until a load succeeds (what the callers'
metrics export).

Two ways to drive it:
- `current()`, per call on the hot path (the speed layer's UDFs and loader): looks at CURRENT (one
  small file) at most every `check_every_s`; with `background`, a change is loaded in a thread
  and the hot path never waits for a load, except for the very first;
- `check()`, on the caller's own schedule (the API's reload task, in a worker thread): looks now
  and loads in the calling thread; `value` is then what requests read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from lambdastack.published import PublishedVersion
from lambdastack.versions import VersionLayout

T = TypeVar("T")
log = logging.getLogger("lambdastack.follower")


class VersionFollower(Generic[T]):
    """Holds the loaded value of the current version; reloads it when CURRENT changes."""

    def __init__(
        self,
        layout: VersionLayout,
        load: Callable[[PublishedVersion], T],
        check_every_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        background: bool = True,
        retry_max_s: float = 60.0,
    ):
        self._layout, self._load = layout, load
        self._every, self._clock, self._background = check_every_s, clock, background
        self._retry_max_s = retry_max_s
        self._lock = threading.Lock()
        self._checked: float | None = None
        self._wanted: str | None = None  # the version being loaded or loaded
        self._value: tuple[str, T] | None = None
        self.failures = 0  # failed loads so far
        self.failing: str | None = None  # the version whose newest load failed, until one succeeds
        self._wait_s = 0.0  # the backoff after the last failure of `failing`
        self._retry_at = 0.0

    @property
    def version(self) -> str | None:
        """The version of `value`."""
        value = self._value
        return None if value is None else value[0]

    @property
    def value(self) -> T | None:
        """The newest loaded version's value, without looking at CURRENT (None before any)."""
        value = self._value
        return None if value is None else value[1]

    def current(self) -> T | None:
        """`value`, after looking at CURRENT if `check_every_s` has passed since the last look."""
        now = self._clock()
        if self._checked is None or now - self._checked >= self._every:
            self._checked = now
            self.check()
        return self.value

    def check(self) -> bool:
        """Look at CURRENT now and load the version it names if that is new; True when this call
        swapped in a new value (a background load swaps later and returns False)."""
        vid = self._layout.current()
        with self._lock:
            if vid is None or vid == self._wanted:
                return False
            if vid == self.failing and self._clock() < self._retry_at:
                return False  # backing off
            self._wanted = vid
        if self._value is None or not self._background:
            return self._load_and_swap(vid)
        threading.Thread(target=self._load_and_swap, args=(vid,), daemon=True).start()
        return False

    def _load_and_swap(self, vid: str) -> bool:
        try:
            value = self._load(PublishedVersion(self._layout, vid))
        except Exception:  # noqa: BLE001 - keep the old version; retry with backoff
            with self._lock:
                self.failures += 1
                if self.failing == vid:
                    self._wait_s = min(2 * self._wait_s, self._retry_max_s)
                else:
                    self.failing, self._wait_s = vid, min(self._every, self._retry_max_s)
                self._retry_at = self._clock() + self._wait_s
                if self._wanted == vid:
                    self._wanted = None
            log.warning(
                "loading batch version %s failed (%d failed loads); keeping %s, retrying in %.0f s",
                vid,
                self.failures,
                self.version,
                self._wait_s,
                exc_info=True,
            )
            return False
        with self._lock:
            if self._wanted != vid:  # a newer CURRENT seen meanwhile wins
                return False
            self._value = (vid, value)
            self.failing, self._wait_s = None, 0.0
            return True
