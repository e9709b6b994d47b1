"""The loader through store faults (pure logic: an in-memory broker and a store that fails on
command): it waits with doubling backoff and never exits, loads the same batch again when the store
kept its data, and replays from the earliest offset when the store lost it; the state it ends with
is the state of a run without faults."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING

from lambdastack.settings import load_settings
from lambdastack.speedstore.base import Write
from lambdastack.speedstore.memory import MemorySpeedStore
from speed.group_watch import GroupWatch, PendingOffsets
from speed.loader import SignalLoader
from speed.store_epoch import Backoff, Epoch, caught_up, epoch_of, lag_of

pytestmark = pytest.mark.unit
EPOCH = "t:speed:epoch"


class StoreDown(Exception):
    pass


class FlakyStore(MemorySpeedStore):
    """The in-memory store that raises StoreDown while `down` calls are left, and can lose
    everything it holds (a Redis restarted empty)."""

    def __init__(self, settings: Any):
        plan = MemorySpeedStore.from_settings(settings)._plan
        super().__init__(plan)
        self.down = 0
        self.opens = 0

    def transient_errors(self) -> tuple[type[Exception], ...]:
        return (StoreDown,)

    def _check(self) -> None:
        if self.down > 0:
            self.down -= 1
            raise StoreDown("connection refused")

    def open(self) -> FlakyStore:
        self._check()
        self.opens += 1
        return self

    def apply(self, writes: Any) -> None:
        self._check()
        super().apply(writes)

    def get(self, key: str) -> bytes | None:
        self._check()
        return super().get(key)

    def lose_everything(self) -> None:
        self.__init__(load_settings(environ={"LAMBDASTACK_REDIS__KEY_PREFIX": "t"}))  # type: ignore[misc]


@dataclass
class Msg:
    _topic: str
    _partition: int
    _offset: int
    _key: bytes
    _value: bytes | None

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return 1, 1_000


@dataclass
class Broker:
    """Topics of one partition each, and the committed offsets of one group."""

    logs: dict[str, list[Msg]] = field(default_factory=dict)
    committed: dict[str, int] = field(default_factory=dict)
    commits: list[dict[str, int]] = field(default_factory=list)  # every commit sent, in order

    def append(self, topic: str, key: dict[str, Any], value: dict[str, Any] | None) -> None:
        log = self.logs.setdefault(topic, [])
        log.append(
            Msg(
                topic,
                0,
                len(log),
                json.dumps(key).encode(),
                None if value is None else json.dumps(value).encode(),
            )
        )


@dataclass
class TP:
    topic: str
    partition: int = 0
    offset: int = -1001
    error: Any = None


class FakeConsumer:
    """One group member over `Broker`: assigned on its first `consume`, commits answered on the
    next one. A `stuck` consumer is what a consumer whose coordinator stopped answering looks
    like: no partition, no record, and commits never answered."""

    def __init__(self, broker: Broker, config: dict[str, Any] | None = None, batch: int = 2):
        self.broker, self.batch = broker, batch
        self.on_commit = (config or {}).get("on_commit")
        self.position_of: dict[str, int] = {}
        self._subscribed: tuple[list[str], Any] | None = None
        self._answers: list[list[TP]] = []
        self.stuck = False
        self.answers = True  # False: commits are sent but never answered
        self.closed = False

    def subscribe(self, topics: list[str], on_assign: Any, on_revoke: Any = None) -> None:
        self._subscribed = (topics, on_assign)

    def assign(self, partitions: list[TP]) -> None:
        for p in partitions:
            start = 0 if p.offset == OFFSET_BEGINNING else self.broker.committed.get(p.topic, 0)
            self.position_of[p.topic] = start

    def consume(self, num_messages: int, timeout: float) -> list[Msg]:
        if self.stuck:
            return []
        for offsets in self._answers if self.answers else []:
            self.broker.committed.update({tp.topic: tp.offset for tp in offsets})
            if self.on_commit is not None:
                self.on_commit(None, offsets)
        self._answers = self._answers if not self.answers else []
        if self._subscribed is not None:
            topics, on_assign = self._subscribed
            self._subscribed = None
            on_assign(self, [TP(t) for t in topics])
            return []
        out: list[Msg] = []
        for topic, pos in self.position_of.items():
            got = self.broker.logs.get(topic, [])[pos : pos + self.batch]
            self.position_of[topic] = pos + len(got)
            out += got
        return out

    def poll(self, timeout: float) -> Msg | None:
        got = self.consume(1, timeout)
        return got[0] if got else None

    def commit(self, offsets: list[Any], asynchronous: bool) -> None:
        assert asynchronous and offsets
        self.committed_calls.append({tp.topic: tp.offset for tp in offsets})
        self._answers.append([TP(tp.topic, tp.partition, tp.offset) for tp in offsets])

    @property
    def committed_calls(self) -> list[dict[str, int]]:
        return self.broker.commits

    def assignment(self) -> list[TP]:
        return [] if self.stuck else [TP(t) for t in self.position_of]

    def get_watermark_offsets(self, tp: Any, timeout: float = 1, cached: bool = False) -> tuple[int, int]:
        return 0, len(self.broker.logs.get(tp.topic, []))

    def position(self, tps: list[Any]) -> list[TP]:
        return [TP(tp.topic, 0, self.position_of.get(tp.topic, -1001)) for tp in tps]

    def close(self) -> None:
        self.closed = True


def _settings() -> Any:
    return load_settings(
        environ={
            "LAMBDASTACK_REDIS__KEY_PREFIX": "t",
            "LAMBDASTACK_TOPICS__SIGNALS": "sig",
            "LAMBDASTACK_TOPICS__USERS": "usr",
            "LAMBDASTACK_SPEED__STORE_RETRY_FIRST_S": "0.001",
            "LAMBDASTACK_SPEED__STORE_RETRY_MAX_S": "0.004",
            "LAMBDASTACK_SPEED__EPOCH_CHECK_S": "1",
            "LAMBDASTACK_SPEED__LOADER_STALL_S": "5",
        }
    )


def _stream(broker: Broker, start: int, n: int) -> None:
    for i in range(start, start + n):
        broker.append("sig", {"item_id": f"i{i % 3}", "bucket_ms": 3_600_000 * (i % 4)}, {"cnt": i + 1})
        broker.append("usr", {"user_id": f"u{i % 2}", "field": f"seen:i{i}"}, {"payload": str(1000 + i)})


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 0.6  # two steps per epoch check
        return self.t


def _loader(
    broker: Broker, store: FlakyStore, made: list[FakeConsumer] | None = None, kind: type = FakeConsumer
) -> SignalLoader:
    def make(config: dict[str, Any]) -> FakeConsumer:
        consumer = kind(broker, config)
        if made is not None:
            made.append(consumer)
        return consumer

    return SignalLoader(_settings(), store, clock=Clock(), make_consumer=make)


def _steps(loader: SignalLoader, n: int) -> None:
    for _ in range(n):
        loader._step()


def _state(store: MemorySpeedStore) -> Any:
    """The speed view, without the loader's own keys (epoch token, heartbeat time)."""
    hashes, zsets, strings = store.dump()[:3]
    return tuple(
        {k: v for k, v in d.items() if not k.startswith("t:speed:")} for d in (hashes, zsets, strings)
    )


def _clean_state(broker: Broker) -> Any:
    clean = Broker(logs=broker.logs)
    store = FlakyStore(_settings())
    _steps(_loader(clean, store), 40)
    return _state(store)


def test_a_store_away_for_a_while_is_waited_for_and_the_batch_loaded_again():
    broker, store = Broker(), FlakyStore(_settings())
    _stream(broker, 0, 6)
    loader = _loader(broker, store)
    _steps(loader, 3)
    store.down = 5  # refused five times in a row: the next step waits it out
    _stream(broker, 6, 6)
    _steps(loader, 30)
    assert loader.store_errors == 5 and loader.replays == 1  # the first start's only
    assert _state(store) == _clean_state(broker)
    assert epoch_of(store.get(EPOCH)) is Epoch.READY
    beat = store.hash("t:speed:loader")
    assert beat["lag"] == b"0" and beat["replaying"] == b"0" and int(beat["beat_ms"]) > 0


@pytest.mark.parametrize("refused", [0, 2], ids=["between-two-batches", "killed-then-restarted"])
def test_a_store_restarted_empty_is_rebuilt_by_a_replay_from_the_earliest_offset(refused):
    broker, store = Broker(), FlakyStore(_settings())
    _stream(broker, 0, 8)
    loader = _loader(broker, store)
    _steps(loader, 20)
    assert epoch_of(store.get(EPOCH)) is Epoch.READY
    store.lose_everything()  # with 0 refused, no error is ever seen: only the epoch key is gone
    store.down = refused
    _stream(broker, 8, 4)
    _steps(loader, 40)
    assert loader.replays == 2 and not loader.replaying
    assert _state(store) == _clean_state(broker)
    assert epoch_of(store.get(EPOCH)) is Epoch.READY


def test_a_replay_cut_short_is_started_again_by_the_next_loader():
    broker, store = Broker(), FlakyStore(_settings())
    _stream(broker, 0, 8)
    first = _loader(broker, store)
    _steps(first, 4)  # stopped in its replay: the epoch says rebuilding, some offsets committed
    assert epoch_of(store.get(EPOCH)) is Epoch.REBUILDING and broker.committed
    store.lose_everything()
    store.apply([Write("set", EPOCH, value="rebuilding 0ld")])
    second = _loader(broker, store)
    _steps(second, 40)
    assert second.replays == 1
    assert _state(store) == _clean_state(broker)


def test_backoff_doubles_to_its_maximum_and_resets():
    b = Backoff(0.2, 1.0)
    assert [b.next_wait() for _ in range(5)] == [0.2, 0.4, 0.8, 1.0, 1.0]
    assert b.failures == 5
    b.reset()
    assert b.next_wait() == 0.2 and b.failures == 1


def test_lag_counts_what_is_left_to_read():
    assert lag_of([(5, 0, 9), (-1001, 2, 6)]) == 4 + 4
    assert lag_of([(3, 0, -1001)]) is None


def test_epoch_values_and_caught_up():
    assert epoch_of(None) is Epoch.MISSING
    assert epoch_of(b"ready abc") is Epoch.READY
    assert epoch_of(b"rebuilding abc") is Epoch.REBUILDING
    assert epoch_of(b"\xff garbage") is Epoch.MISSING
    assert caught_up([(5, 0, 5), (-1001, 3, 3)])  # read to its end; an empty partition
    assert not caught_up([(4, 0, 5)])
    assert not caught_up([(-1001, 0, 2)])


def test_a_consumer_whose_group_stopped_answering_is_replaced_and_the_next_one_loads_everything():
    broker, store, made = Broker(), FlakyStore(_settings()), []
    _stream(broker, 0, 6)
    loader = _loader(broker, store, made)
    _steps(loader, 12)
    made[0].stuck = True  # its session timed out: no partition, and its rejoin never answered
    _stream(broker, 6, 6)
    _steps(loader, 6)
    assert loader.consumer_restarts == 0 and len(made) == 1  # not before `speed.loader_stall_s`
    _steps(loader, 30)
    assert loader.consumer_restarts == 1 and len(made) == 2 and made[0].closed
    assert _state(store) == _clean_state(broker)
    assert broker.committed == {"sig": 12, "usr": 12}


def test_a_commit_never_answered_replaces_the_consumer_and_commits_wait_for_their_answer():
    broker, store, made = Broker(), FlakyStore(_settings()), []
    _stream(broker, 0, 12)
    loader = _loader(broker, store, made)
    _steps(loader, 4)
    made[0].answers = False  # assigned and reading, its commits queued behind a dead coordinator
    sent, records = len(broker.commits), loader.records
    _steps(loader, 4)
    assert len(broker.commits) == sent and loader.records > records  # loading on, one commit out
    _steps(loader, 30)
    assert loader.consumer_restarts == 1 and made[0].closed
    assert _state(store) == _clean_state(broker)
    assert broker.committed == {"sig": 12, "usr": 12}


def test_commits_cover_only_what_the_store_acknowledged_and_a_stop_commits_what_is_owed():
    broker, store, made = Broker(), FlakyStore(_settings()), []
    _stream(broker, 0, 10)
    checked: list[int] = []

    class Checking(FakeConsumer):
        def commit(self, offsets: list[Any], asynchronous: bool) -> None:
            i = next(tp.offset for tp in offsets if tp.topic == "sig") - 1  # the last record covered
            got = store.hash(f"t:item:i{i % 3}").get(f"{3_600_000 * (i % 4)}:*")
            assert got == str(i + 1).encode(), f"offset {i + 1} committed before its record was written"
            checked.append(i + 1)
            super().commit(offsets, asynchronous)

    loader = _loader(broker, store, made, Checking)
    _steps(loader, 4)
    store.down = 3  # the batch taken next is written only once the store is back
    _steps(loader, 3)
    made[-1].answers = False
    _steps(loader, 10)  # read to the end; the commit sent last is never answered
    made[-1].answers = True
    loader.stop()
    loader.run()  # stopped already: the last commit, answered while it polls, and the close
    assert loader.store_errors == 3 and len(checked) >= 3
    assert broker.committed == {"sig": 10, "usr": 10} and made[-1].closed


def test_pending_offsets_never_move_back_and_are_sent_again_after_a_failure():
    owed = PendingOffsets()
    assert owed.take() is None
    owed.written({("s", 0): 5, ("s", 1): 3})
    owed.written({("s", 0): 4})  # older: ignored
    assert owed.take() == {("s", 0): 5, ("s", 1): 3} and owed.take() is None
    owed.failed()
    assert owed.take() == {("s", 0): 5, ("s", 1): 3}
    owed.revoked([("s", 1)])
    owed.written({("s", 0): 7})
    assert owed.take() == {("s", 0): 7}


def test_group_watch_says_why_only_after_the_stall_time():
    watch = GroupWatch(30, now=0)
    assert watch.stalled(30) is None
    assert "no partition" in (watch.stalled(31) or "")
    watch.assignment(2, now=31)
    watch.commit_sent(40)
    assert watch.commit_outstanding and watch.stalled(70) is None
    assert "commit has had no answer for 31 s" in (watch.stalled(71) or "")
    watch.commit_answered()
    watch.assignment(0, now=80)
    assert watch.stalled(110) is None and watch.stalled(111) is not None
