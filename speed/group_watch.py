"""Whether the loader's Kafka consumer still reaches its group, and which offsets it owes Kafka:
the loader's pure rules, unit-tested without a broker.

A consumer whose group coordinator stops answering (seen after its broker was frozen, fenced and
killed under load) keeps running and reads nothing: its session times out, its partitions are
revoked, and its rejoin can stay queued behind a connection that never comes back. So the loader
commits asynchronously (one commit outstanding at a time, never blocking a batch) and replaces the
consumer when, for longer than `speed.loader_stall_s`, it has held no partition of its topics or
its last commit has had no answer. The new consumer resumes from the committed offsets: what it
reads again is written again with the same absolute values.

Offsets are explicit: the next offset after the last record of each partition whose writes the
store acknowledged, so a commit never covers a record taken but not yet written."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

Partition = tuple[str, int]  # (topic, partition)


class PendingOffsets:
    """The offsets to commit: per partition, the one after the newest record written."""

    def __init__(self) -> None:
        self._next: dict[Partition, int] = {}
        self._dirty = False

    def written(self, offsets: Mapping[Partition, int]) -> None:
        """A batch's writes were acknowledged: its partitions' next offsets (never moving back)."""
        for tp, offset in offsets.items():
            if offset > self._next.get(tp, -1):
                self._next[tp] = offset
                self._dirty = True

    def take(self) -> dict[Partition, int] | None:
        """Every offset owed, when any moved since the last `take` (else None)."""
        if not self._dirty:
            return None
        self._dirty = False
        return dict(self._next)

    def failed(self) -> None:
        """The commit of the last `take` failed: the next `take` sends the offsets again."""
        self._dirty = bool(self._next)

    def revoked(self, partitions: Iterable[Partition]) -> None:
        """Partitions no longer this consumer's: their offsets are the next owner's to commit."""
        for tp in partitions:
            self._next.pop(tp, None)


class GroupWatch:
    """Time without a partition, and time a commit has waited for its answer; `stalled` says why
    the consumer should be replaced, or None."""

    def __init__(self, stall_s: float, now: float):
        self.stall_s = stall_s
        self._unassigned_since: float | None = now  # a new consumer holds nothing until it joins
        self._commit_sent: float | None = None

    @property
    def commit_outstanding(self) -> bool:
        return self._commit_sent is not None

    def assignment(self, partitions: int, now: float) -> None:
        if partitions:
            self._unassigned_since = None
        elif self._unassigned_since is None:
            self._unassigned_since = now

    def commit_sent(self, now: float) -> None:
        self._commit_sent = now

    def commit_answered(self) -> None:
        self._commit_sent = None

    def stalled(self, now: float) -> str | None:
        if self._unassigned_since is not None and now - self._unassigned_since > self.stall_s:
            return f"it has held no partition of its topics for {now - self._unassigned_since:.0f} s"
        if self._commit_sent is not None and now - self._commit_sent > self.stall_s:
            return f"its offset commit has had no answer for {now - self._commit_sent:.0f} s"
        return None
