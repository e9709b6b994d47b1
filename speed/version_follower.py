"""Follows the published batch version (CURRENT) from inside a long-running process.

`snapshot()` is called per batch of records. At most every `check_every_s` it reads CURRENT (one
small file); when CURRENT names another version (publish, promote or rollback), a background
thread loads it and then swaps the reference in one assignment, so callers see the old snapshot
or the new one, never a mix, and the hot path never waits for a load, except for the very first.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from lambdastack.versions import VersionLayout

T = TypeVar("T")


class VersionFollower(Generic[T]):
    """Holds the loaded value of the current version; reloads it when CURRENT changes."""

    def __init__(
        self,
        layout: VersionLayout,
        load: Callable[[VersionLayout, str], T],
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
        """The version of the value `snapshot()` returns now."""
        value = self._value
        return None if value is None else value[0]

    def snapshot(self) -> T | None:
        """The newest loaded version's value (None before any version loaded)."""
        now = self._clock()
        if self._checked is None or now - self._checked >= self._every:
            self._checked = now
            self._check()
        value = self._value
        return None if value is None else value[1]

    def _check(self) -> None:
        vid = self._layout.current()
        with self._lock:
            if vid is None or vid == self._wanted:
                return
            self._wanted = vid
        if self._value is None or not self._background:
            self._load_and_swap(vid)
        else:
            threading.Thread(target=self._load_and_swap, args=(vid,), daemon=True).start()

    def _load_and_swap(self, vid: str) -> None:
        try:
            value = self._load(self._layout, vid)
        except Exception as e:  # noqa: BLE001 - keep serving the old version; retry at the next check
            print(f"[version-follower] loading {vid} failed, keeping {self.version}: {e}", file=sys.stderr)
            with self._lock:
                if self._wanted == vid:
                    self._wanted = None
            return
        with self._lock:
            if self._wanted == vid:  # a newer CURRENT seen meanwhile wins
                self._value = (vid, value)
