"""The event ids that arrived within the last `ttl_s` seconds: how the archiver keeps copies of an
event (a client's retry after a 503 carries the same id) out of the master dataset, as the speed
job's de-duplication keeps them out of the counts, under the same `speed.dedupe_ttl_s`.

Exact and bounded: an id is remembered from its first arrival until `ttl_s` later, then forgotten
(so memory holds about rate x ttl_s ids, strings as they came); no hashing, so two different ids
can never be taken for one another. Time is a caller's clock in seconds, so a restart can
remember the ids of files written before it at the times they were written.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable


class RecentIds:
    """A set of ids and a queue of (arrival second, ids that first arrived in it), oldest first:
    forgetting pops whole seconds from the front (a dict emptied from its front would rescan its
    deleted slots on every pop; a (time, id) pair per id would cost ~80 bytes more each)."""

    def __init__(self, ttl_s: float):
        self._ttl_s = ttl_s
        self._ids: set[str] = set()
        self._queue: deque[tuple[float, list[str]]] = deque()

    def __len__(self) -> int:
        return len(self._ids)

    def first_time(self, event_id: str, now_s: float) -> bool:
        """True if the id did not arrive within the last ttl_s (it is remembered from now on);
        False for a copy."""
        self.forget_before(now_s - self._ttl_s)
        if event_id in self._ids:
            return False
        self._add(event_id, now_s)
        return True

    def remember(self, event_ids: Iterable[str], at_s: float) -> None:
        """Ids that arrived at `at_s` (calls in time order: the oldest are forgotten first)."""
        for event_id in event_ids:
            if event_id not in self._ids:
                self._add(event_id, at_s)

    def forget_before(self, t_s: float) -> None:
        """Forget the ids whose arrival second began at or before t_s - 1 (each is kept at least
        ttl_s, at most a second longer)."""
        queue, ids = self._queue, self._ids
        while queue and queue[0][0] + 1 <= t_s:
            ids.difference_update(queue.popleft()[1])

    def _add(self, event_id: str, at_s: float) -> None:
        second = float(math.floor(at_s))
        if not self._queue or self._queue[-1][0] != second:
            self._queue.append((second, []))
        self._queue[-1][1].append(event_id)
        self._ids.add(event_id)
