"""Signals and users topics -> the speed store: absolute writes, offsets committed only after them.

The records become writes in `speed.signal_router` (signals) and `speed.user_writes` (users). The
store is `lambdastack.speedstore`'s Redis one (one MULTI/EXEC pipeline per batch, a TTL on every
key); the unit tests replay into the in-memory one. Through Redis faults the loader waits with
backoff, and rebuilds a speed view Redis lost by replaying its topics (speed.store_epoch)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from lambdastack.keys import KeyLayout
from lambdastack.settings import Settings
from lambdastack.speed_health import heartbeat
from lambdastack.speedstore.base import SpeedStore
from lambdastack.speedstore.redis import RedisSpeedStore
from speed import drift
from speed.group_watch import GroupWatch, Partition, PendingOffsets
from speed.signal_router import SignalRouter
from speed.store_epoch import (
    Backoff,
    Epoch,
    caught_up,
    epoch_of,
    epoch_write,
    heartbeat_writes,
    lag_of,
    new_token,
    read_epoch,
)
from speed.user_writes import report_skip, user_writes

BATCH_MAX = 10_000  # records taken from Kafka per Redis pipeline


class SignalRecord(NamedTuple):
    """One record of the signals or users topic, as the router and the metrics see it."""

    key: bytes | None
    value: bytes | None
    timestamp: int  # Kafka record timestamp, epoch ms (when Flink emitted it)


def newest_per_key(records: Iterable[SignalRecord]) -> list[SignalRecord]:
    """The last record of each key, in the order of those last records: both topics are upserts
    of absolute values, so an earlier record of a key in the same batch changes nothing."""
    last: dict[bytes, SignalRecord] = {}
    for r in records:
        if r.key is not None:
            last.pop(r.key, None)
            last[r.key] = r
    return list(last.values())


class SignalLoader:
    """Consumes the signals and users topics and upserts the store until `stop()`; a batch's
    offsets are committed only after its writes were acknowledged (a crash replays them: same
    values). A store that is away is waited for with backoff, never a reason to exit; a store
    that lost the speed view (speed.store_epoch) gets it back by a replay from the earliest offset."""

    def __init__(
        self,
        settings: Settings,
        writer: SpeedStore | None = None,
        on_applied: Callable[[list[Any]], None] | None = None,
        on_drift: Callable[[drift.DriftReport], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        make_consumer: Callable[[dict[str, Any]], Any] | None = None,
        job_seen: Callable[[], int | None] | None = None,
    ):
        self._settings = settings
        self._make_consumer = make_consumer or _kafka_consumer
        self.job_seen = job_seen  # when the Flink job last answered RUNNING (for the heartbeat)
        self._writer = writer or RedisSpeedStore(settings)
        self._on_applied = on_applied  # sees the signal records of a batch once in Redis (metrics)
        self._on_drift = on_drift  # sees each new drift report (e.g. metrics.DriftGauges.observe)
        self._layout = KeyLayout(settings.redis.key_prefix)
        self._stop = threading.Event()
        self._clock = clock
        self._backoff = Backoff(settings.speed.store_retry_first_s, settings.speed.store_retry_max_s)
        self._consumer: Any = None
        self._router: SignalRouter | None = None  # None: to be made (again) before the next batch
        self._closed = True  # the store: opened by the first step, and again after each failure
        self._token = new_token()
        self._replay_ends: dict[tuple[str, int], tuple[int, int] | None] = {}  # partition -> (low, high)
        self._epoch_checked = float("-inf")
        self._replay_started = 0.0
        self._beat_ttl_s = max(60, int(settings.speed.epoch_check_s * 30))
        self.records = 0
        self.store_errors = 0  # store calls that failed and were retried
        self.replays = 0  # replays from the earliest offset (the first start of a loader group too)
        self.skipped = 0  # records of the loader topics that were not records of theirs (on stderr)
        self.replaying = False
        self.consumer_restarts = 0  # consumers replaced because their group stopped answering
        self._watch = GroupWatch(settings.speed.loader_stall_s, clock())
        self._offsets = PendingOffsets()
        self._commit_failing = False
        self._generation = 0

    def stop(self) -> None:
        self._stop.set()

    def _new_consumer(self) -> Any:
        s = self._settings
        self._generation += 1
        generation = self._generation  # a replaced consumer's late answers are not this one's
        consumer = self._make_consumer(
            {
                "bootstrap.servers": s.kafka.bootstrap,
                "group.id": s.speed.loader_group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "client.id": "lambdastack-redis-loader",
                "fetch.wait.max.ms": 10,
                "on_commit": lambda error, parts: self._on_commit(generation, error, parts),
            }
        )
        consumer.subscribe(
            [s.topics.signals, s.topics.users], on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        self._watch = GroupWatch(s.speed.loader_stall_s, self._clock())
        self._offsets = PendingOffsets()
        return consumer

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        """In a replay, a partition assigned for the first time is read from its earliest offset."""
        from confluent_kafka import OFFSET_BEGINNING

        for p in partitions:
            if self.replaying and (p.topic, p.partition) not in self._replay_ends:
                self._replay_ends[(p.topic, p.partition)] = None  # its end is read after the assignment
                p.offset = OFFSET_BEGINNING
        consumer.assign(partitions)

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        self._offsets.revoked((p.topic, p.partition) for p in partitions)

    def run(self) -> None:
        try:
            while not self._stop.is_set():
                self._step()
        finally:
            if self._consumer is not None:
                try:
                    self._last_commit()
                except Exception as e:  # noqa: BLE001 - the stop goes on (a restart reads these again)
                    _say(f"could not commit the last offsets on stop ({type(e).__name__}: {e})")
                self._consumer.close()
            self._writer.close()

    def _step(self) -> None:
        """Open the store and make the router when needed, then load one batch; a store error
        waits with backoff, reopens the store and loads the same batch again from a new router
        (what a restart would do) unless the store lost the view, which a replay then rebuilds."""
        taken: _Taken | None = None
        while not self._stop.is_set():
            try:
                if self._closed:
                    self._writer.open()
                    self._closed = False
                if self._router is None and self._begin():
                    taken = _Taken([], [], {})  # a replay starts: a batch taken comes again
                if taken is None:
                    taken = self._take()
                self._load(taken)
                self._watch_epoch()
                self._backoff.reset()
                return
            except self._writer.transient_errors() as e:
                self._store_failed(e)

    def _store_failed(self, error: Exception) -> None:
        self.store_errors += 1
        self._router = None
        wait = self._backoff.next_wait()
        _say(
            f"the speed store failed ({type(error).__name__}: {error}); "
            f"retrying in {wait:.1f} s (failure {self._backoff.failures} in a row)"
        )
        self._stop.wait(wait)
        self._writer.close()
        self._closed = True  # opened again by the next try

    def _begin(self) -> bool:
        """After (re)opening the store: a new router, and a replay from the earliest offset when
        the epoch key says the store lost the view (True then)."""
        state, token = read_epoch(self._writer.get(self._layout.speed_epoch()))
        lost = not (state is Epoch.READY or (state is Epoch.REBUILDING and token == self._token))
        if lost:
            self._start_replay(state)
        elif self._consumer is None:
            self._consumer = self._new_consumer()
        self._router = SignalRouter(self._settings, self._writer, on_drift=self._on_drift, on_skip=self._skip)
        self._router.start()
        return lost

    def _start_replay(self, state: Epoch) -> None:
        why = {
            Epoch.MISSING: "Redis holds no speed view of this loader (a first start, or Redis lost it)",
            Epoch.REBUILDING: "the last replay of this loader's topics was cut short",
        }.get(state, "")
        _say(f"{why}: replaying the signals and users topics from the earliest offset")
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        self._writer.close()
        self._writer.open()  # forgets the TTLs it set: the keys are written again
        self._token = new_token()
        self._writer.apply([epoch_write(self._layout, Epoch.REBUILDING, self._token)])
        self.replaying, self._replay_ends, self._replay_started = True, {}, self._clock()
        self.replays += 1
        self._consumer = self._new_consumer()

    def _watch_epoch(self) -> None:
        """At most every `speed.epoch_check_s`: a replay that caught up is marked ready; an epoch
        key gone (Redis restarted empty between two batches) starts a replay."""
        now = self._clock()
        if now - self._epoch_checked < self._settings.speed.epoch_check_s:
            return
        self._epoch_checked = now
        job_ms = self.job_seen() if self.job_seen is not None else None
        beat = heartbeat(int(time.time() * 1000), job_ms, self._lag(), self.replaying)
        self._writer.apply(heartbeat_writes(self._layout, beat, self._beat_ttl_s))
        self._watch_group(now)
        if self.replaying and self._replay_done():
            self._writer.apply([epoch_write(self._layout, Epoch.READY, self._token)])
            self.replaying = False
            _say(f"the speed view is rebuilt: replayed to the end in {now - self._replay_started:.1f} s")
        elif epoch_of(self._writer.get(self._layout.speed_epoch())) is Epoch.MISSING:
            self._router = None  # the next step starts the replay

    def _lag(self) -> int | None:
        """Records of the assigned partitions not loaded yet, from the end offsets the consumer
        last saw in its fetches (no broker round trip); None before an assignment."""
        from confluent_kafka import KafkaException, TopicPartition

        try:
            assigned = self._consumer.assignment()
            if not assigned:
                return None
            ends = [self._consumer.get_watermark_offsets(p, cached=True) for p in assigned]
            positions = self._consumer.position([TopicPartition(p.topic, p.partition) for p in assigned])
        except KafkaException:
            return None
        if any(e is None for e in ends):
            return None
        return lag_of((p.offset, e[0], e[1]) for p, e in zip(positions, ends, strict=True))

    def _replay_done(self) -> bool:
        """Whether every assigned partition was read to the end offset it had when the replay
        started (read once, after its assignment)."""
        from confluent_kafka import KafkaException, TopicPartition

        assigned = [(p.topic, p.partition) for p in self._consumer.assignment()]
        if not assigned or any(tp not in self._replay_ends for tp in assigned):
            return False
        try:
            for tp in assigned:
                if self._replay_ends[tp] is None:
                    got = self._consumer.get_watermark_offsets(TopicPartition(*tp), timeout=2, cached=False)
                    if got is None:
                        return False
                    self._replay_ends[tp] = (int(got[0]), int(got[1]))
            positions = self._consumer.position([TopicPartition(*tp) for tp in assigned])
        except KafkaException:
            return False  # the broker is away: look again at the next check
        ends = {tp: e for tp, e in self._replay_ends.items() if e is not None}
        return caught_up((p.offset, *ends[(p.topic, p.partition)]) for p in positions)

    def _take(self) -> _Taken:
        """One batch from Kafka, split by topic, the last record per key kept."""
        messages = self._consumer.consume(num_messages=BATCH_MAX, timeout=0.01)
        signals: list[SignalRecord] = []
        users: list[SignalRecord] = []
        offsets: dict[Partition, int] = {}
        users_topic = self._settings.topics.users
        for m in messages:
            if m.error() is not None:
                _say(str(m.error()))
                continue
            offsets[(m.topic(), m.partition())] = m.offset() + 1
            rec = SignalRecord(m.key(), m.value(), m.timestamp()[1])
            (users if m.topic() == users_topic else signals).append(rec)
        if keyless := sum(r.key is None for r in (*signals, *users)):
            _say(f"skipping {keyless} record(s) without a key")
        return _Taken(newest_per_key(signals), newest_per_key(users), offsets)

    def _load(self, taken: _Taken) -> None:
        """The batch's writes applied, then its offsets committed; then the pruning that is due."""
        assert self._router is not None
        s = self._settings
        # (newest_per_key keeps keyed records only; the filter tells the type checker)
        writes = self._router.writes((r.key, r.value) for r in taken.signals if r.key is not None)
        writes += user_writes(
            ((r.key, r.value) for r in taken.users if r.key is not None),
            self._layout,
            s.speed.user_recent_n,
            s.speed.seen_max,
            self._skip,
        )
        if writes:
            self._writer.apply(writes)
            if self._on_applied is not None:
                self._on_applied(taken.signals)
        self.records += len(taken.signals) + len(taken.users)
        self._offsets.written(taken.offsets)
        self._commit()
        if pruned := self._router.prune_writes():
            self._writer.apply(pruned)

    def _skip(self, reason: str) -> None:
        self.skipped += 1
        report_skip(reason)

    def _commit(self) -> None:
        """The offsets owed, committed asynchronously, one commit outstanding at a time (a later
        commit carries whatever the batches in between wrote)."""
        from confluent_kafka import KafkaException, TopicPartition

        if self._watch.commit_outstanding or (owed := self._offsets.take()) is None:
            return
        try:
            self._consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in owed.items()], asynchronous=True
            )
        except KafkaException as e:  # not sent: the next commit carries these offsets
            self._offsets.failed()
            self._commit_result(e)
        else:
            self._watch.commit_sent(self._clock())

    def _on_commit(self, generation: int, error: Any, partitions: list[Any]) -> None:
        """Kafka's answer to a commit (served from `consume`)."""
        if generation != self._generation:
            return
        self._watch.commit_answered()
        failed = error is not None or any(p.error is not None for p in partitions or [])
        if failed:
            self._offsets.failed()
        self._commit_result(error or next((p.error for p in partitions or [] if p.error), None))

    def _commit_result(self, error: Any) -> None:
        """One line when commits start failing, one when they work again."""
        if error is not None and not self._commit_failing:
            _say(f"could not commit the offsets ({error}); the next commit carries them")
        elif error is None and self._commit_failing:
            _say("the offsets are committed again")
        self._commit_failing = error is not None

    def _watch_group(self, now: float) -> None:
        """A consumer whose group stopped answering for `speed.loader_stall_s` is replaced."""
        self._watch.assignment(len(self._consumer.assignment()), now)
        if (why := self._watch.stalled(now)) is None:
            return
        _say(
            f"the loader's Kafka consumer is stuck: {why}; joining the group again with a new "
            "consumer, which resumes from the committed offsets"
        )
        old, self._consumer = self._consumer, self._new_consumer()
        self.consumer_restarts += 1
        threading.Thread(target=old.close, name="loader-consumer-close", daemon=True).start()

    def _last_commit(self, timeout_s: float = 5.0) -> None:
        """On stop: the offsets still owed, committed while the consumer is polled for the answer
        (records it returns are not written, and their offsets not committed)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._watch.commit_outstanding:
                self._commit()
                if not self._watch.commit_outstanding:
                    return  # nothing owed, or not sent
            self._consumer.poll(0.1)


class _Taken(NamedTuple):
    signals: list[SignalRecord]
    users: list[SignalRecord]
    offsets: dict[Partition, int]  # per partition, the offset after its last record taken


def _kafka_consumer(config: dict[str, Any]) -> Any:
    from confluent_kafka import Consumer

    return Consumer(config)


def _say(message: str) -> None:
    print(f"[loader] {message}", file=sys.stderr, flush=True)
