"""Which items the loader wrote a minute counter of, per minute: what the pruning of minute fields
past `speed.minute_retention_s` deletes (speed.signal_router).

Minute-major and compact: an item gets a number once (bounded by the catalogue), a minute one
byte per item number (a bytearray). A set of minutes per item grew for the whole retention (70
minutes) and in steps, every item's set resizing in the same minute: a 30-minute soak saw the
loader's process grow 15 MB at once after minute 20. Here a minute costs a byte per item at
most (about 10 kB for 10,000 items).
"""

from __future__ import annotations

import numpy as np


class MinutesWritten:
    def __init__(self) -> None:
        self._number: dict[str, int] = {}
        self._items: list[str] = []
        self._minutes: dict[int, bytearray] = {}

    def mark(self, item: str, minute_ms: int) -> None:
        n = self._number.get(item)
        if n is None:
            n = self._number[item] = len(self._items)
            self._items.append(item)
        flags = self._minutes.get(minute_ms)
        if flags is None:
            flags = self._minutes[minute_ms] = bytearray(len(self._items))
        elif n >= len(flags):
            flags.extend(bytes(len(self._items) - len(flags)))
        flags[n] = 1

    def pop_before(self, cutoff_ms: int) -> list[tuple[str, int]]:
        """(item, minute) of every minute before `cutoff_ms`, forgotten from now on; by minute."""
        out: list[tuple[str, int]] = []
        for minute in sorted(m for m in self._minutes if m < cutoff_ms):
            flags = np.frombuffer(self._minutes.pop(minute), dtype=np.uint8)
            out += [(self._items[n], minute) for n in np.flatnonzero(flags).tolist()]
        return out

    def __len__(self) -> int:
        """The minutes remembered."""
        return len(self._minutes)
