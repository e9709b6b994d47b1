"""The one follower of the published batch version (CURRENT), for every long-running process.

A follower holds one value built from the current version (`load` of its lambdastack.published
reader) and replaces it in one assignment when CURRENT names another version (publish, promote
or rollback), so a caller sees the old value or the new one, never a mix. A failed load keeps the
old value and is retried at the next check.

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
    ):
        self._layout, self._load = layout, load
        self._every, self._clock, self._background = check_every_s, clock, background
        self._lock = threading.Lock()
        self._checked: float | None = None
        self._wanted: str | None = None  # the version being loaded or loaded
        self._value: tuple[str, T] | None = None

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
            self._wanted = vid
        if self._value is None or not self._background:
            return self._load_and_swap(vid)
        threading.Thread(target=self._load_and_swap, args=(vid,), daemon=True).start()
        return False

    def _load_and_swap(self, vid: str) -> bool:
        try:
            value = self._load(PublishedVersion(self._layout, vid))
        except Exception:  # noqa: BLE001 - keep the old version; retry at the next check
            log.warning("loading batch version %s failed; keeping %s", vid, self.version, exc_info=True)
            with self._lock:
                if self._wanted == vid:
                    self._wanted = None
            return False
        with self._lock:
            if self._wanted != vid:  # a newer CURRENT seen meanwhile wins
                return False
            self._value = (vid, value)
            return True
