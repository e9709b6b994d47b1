"""The archiver: validated events from the events topic into the master dataset, exactly once.

Files follow batch/master.py's layout and schema (`event_date=YYYY-MM-DD/part-*.parquet`,
EVENTS_SCHEMA) and are named by what they hold: `part-kafka-{topic}-p{partition}-{first}-{last}-{n}`
covers offsets first..last of one partition. Progress lives only in those names: on start each
partition resumes after the highest `last` on disk (consumer-group offsets are not used), so a
crash anywhere neither loses nor repeats a record.

A roll (a partition's offset range, possibly several event dates) is appended with lambdastack.master's
writer: staged under `_staging/{roll}/`, renamed into place, staging removed. A crash leaves the
staging directory behind; on start such a roll is undone (its files in place deleted) and its
offsets are read again, so progress only ever counts complete rolls. Invalid records are skipped
here: the Flink job sends them to the dead-letter topic with the same validation
(lambdastack.events).

Copies of an event (the same event id, as a client's retry after a 503 sends it) are archived
once if they arrive within `speed.dedupe_ttl_s`, the window in which the speed job counts them
once (speed.recent_ids). The ids remembered survive a restart: on start, the ids of the topic's
files written within that window are remembered at their files' modification times.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lambdastack.events import Event, decode
from lambdastack.master import append
from lambdastack.settings import Settings
from lambdastack.tables import EVENTS_SCHEMA
from speed.recent_ids import RecentIds

STAGING = "_staging"  # lambdastack.master.append stages each load in _staging/{load_id}
_NAME = re.compile(
    r"^part-kafka-(?P<topic>.+)-p(?P<partition>\d+)-(?P<first>\d+)-(?P<last>\d+)-\d+\.parquet$"
)


def roll_id(topic: str, partition: int, first: int, last: int) -> str:
    return f"kafka-{topic}-p{partition}-{first:020d}-{last:020d}"


def next_offsets(master_dir: Path, topic: str) -> dict[int, int]:
    """Per partition, the first offset not yet archived (from the file names on disk)."""
    out: dict[int, int] = {}
    for f in master_dir.glob("event_date=*/part-kafka-*.parquet"):
        m = _NAME.match(f.name)
        if m and m["topic"] == topic:
            p = int(m["partition"])
            out[p] = max(out.get(p, 0), int(m["last"]) + 1)
    return out


def archived_since(master_dir: Path, topic: str, since_s: float) -> list[tuple[float, list[str]]]:
    """(modification time, event ids) of the topic's files written at or after `since_s` (wall
    clock seconds), oldest first."""
    files = []
    for f in master_dir.glob("event_date=*/part-kafka-*.parquet"):
        m = _NAME.match(f.name)
        if m and m["topic"] == topic and (mtime := f.stat().st_mtime) >= since_s:
            files.append((mtime, f))
    return [
        (mtime, pq.read_table(f, columns=["event_id"])["event_id"].to_pylist()) for mtime, f in sorted(files)
    ]


def recover(master_dir: Path) -> int:
    """Undo rolls a crash interrupted; returns how many.

    lambdastack.master.append renames a roll's files into place only after all of them were written, and
    removes its staging directory last; so a staging directory left behind marks an interrupted
    roll. Its files already in place are deleted with it, and its offsets are read again.
    """
    undone = 0
    for staged in sorted((master_dir / STAGING).glob("kafka-*")):
        for f in master_dir.glob(f"event_date=*/part-{staged.name}-*.parquet"):
            f.unlink()
        shutil.rmtree(staged, ignore_errors=True)
        undone += 1
    return undone


def write_roll(events: list[Event], master_dir: Path, rid: str) -> int:
    """Append one roll to the master dataset with lambdastack.master's writer; returns the rows."""
    table = pa.table(
        {
            "event_id": [e.event_id for e in events],
            "user_id": [e.user_id for e in events],
            "item_id": [e.item_id for e in events],
            "type": [e.type for e in events],
            "value": [e.value for e in events],
            "event_time": pa.array([e.event_time_ms for e in events], pa.int64()).cast(
                pa.timestamp("ms", tz="UTC")
            ),
            "schema_version": pa.array([e.schema_version for e in events], pa.int32()),
        },
        schema=EVENTS_SCHEMA,
    )
    return append(table, master_dir, load_id=rid)


@dataclass
class Roll:
    """What one partition has read since its last roll: an offset range and its valid events."""

    first: int
    last: int
    opened: float
    events: list[Event] = field(default_factory=list)

    def add(self, offset: int, event: Event | None) -> None:
        self.last = offset
        if event is not None:
            self.events.append(event)

    def due(self, now: float, max_rows: int, max_s: float) -> bool:
        return len(self.events) >= max_rows or (now - self.opened >= max_s and self.last >= self.first)


class Archiver:
    """Consumes the events topic from the archived offsets on; rolls files by size and time."""

    def __init__(self, settings: Settings, on_archived: Callable[[int], None] | None = None):
        self._settings = settings
        self._master = settings.path(settings.data.master_dir)
        self._topic = settings.topics.events
        self._on_archived = on_archived
        self._stop = threading.Event()
        self._rolls: dict[int, Roll] = {}
        self._ids = RecentIds(settings.speed.dedupe_ttl_s)
        self.archived = 0
        self.copies = 0  # records left out as copies of an event archived within the TTL

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Archive until `stop()`; what was read is written before returning."""
        self._master.mkdir(parents=True, exist_ok=True)
        recover(self._master)
        ttl_s = self._settings.speed.dedupe_ttl_s
        for mtime, ids in archived_since(self._master, self._topic, time.time() - ttl_s):
            self._ids.remember(ids, mtime)
        consumer = self._open_consumer()
        try:
            while not self._stop.is_set():
                batches = consumer.poll(timeout_ms=200, max_records=20_000)
                now_ms = int(time.time() * 1000)
                for tp, records in batches.items():
                    for rec in records:
                        self._roll(tp.partition, rec.offset).add(rec.offset, self._once(rec.value, now_ms))
                self._flush(force=False)
        finally:
            self._flush(force=True)
            consumer.close()

    def _once(self, payload: bytes | None, now_ms: int) -> Event | None:
        """The record's event, unless it is invalid or a copy of one that arrived within the TTL."""
        event = _valid(payload, now_ms)
        if event is not None and not self._ids.first_time(event.event_id, now_ms / 1000):
            self.copies += 1
            return None
        return event

    def _open_consumer(self) -> Any:
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(
            bootstrap_servers=self._settings.kafka.bootstrap,
            enable_auto_commit=False,
            group_id=None,
            client_id="lambdastack-archiver",
            fetch_max_wait_ms=100,
        )
        partitions: set[int] | None = None
        while not partitions and not self._stop.is_set():
            partitions = consumer.partitions_for_topic(self._topic)
            if not partitions:
                time.sleep(0.5)
        tps = [TopicPartition(self._topic, p) for p in sorted(partitions or ())]
        consumer.assign(tps)
        done = next_offsets(self._master, self._topic)
        earliest = consumer.beginning_offsets(tps) if tps else {}
        for tp in tps:
            start = max(done.get(tp.partition, 0), earliest[tp])
            consumer.seek(tp, start)
        return consumer

    def _roll(self, partition: int, offset: int) -> Roll:
        if partition not in self._rolls:
            self._rolls[partition] = Roll(first=offset, last=offset - 1, opened=time.monotonic())
        return self._rolls[partition]

    def _flush(self, force: bool) -> None:
        s, now = self._settings.speed, time.monotonic()
        for partition, roll in list(self._rolls.items()):
            if not (force or roll.due(now, s.archive_roll_rows, s.archive_roll_s)):
                continue
            if roll.events:
                rid = roll_id(self._topic, partition, roll.first, roll.last)
                n = write_roll(roll.events, self._master, rid)
                self.archived += n
                if self._on_archived is not None:
                    self._on_archived(n)
            del self._rolls[partition]


def _valid(payload: bytes | None, now_ms: int) -> Event | None:
    if payload is None:
        return None
    event, _ = decode(payload, now_ms=now_ms)
    return event
