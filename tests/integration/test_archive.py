"""The archiver puts exactly the valid events of the events topic into the master dataset, each
event once though copies of it arrive (a retry's), also when it is SIGKILLed in the middle of its
work and started again; the batch layer's reader sees them."""

from __future__ import annotations

import re
import threading
import time

import pytest

from lambdastack.master import read
from lambdastack.producer import EventProducer
from tests.conftest import make_isolated
from tests.integration.helpers import eventually, start_cli
from tests.integration.speedcheck import make_events
from tools.stack import kafka

pytestmark = pytest.mark.integration
BAD = [b"not json", b'{"event_id": "x"}']


def _archived(master) -> int:
    return read(master).num_rows


def test_events_are_archived_exactly_once_across_a_crash(services, base_env, tmp_path, stopper, spark):
    iso = make_isolated(
        base_env,
        tmp_path,
        LAMBDASTACK_SPEED__ARCHIVE_ROLL_ROWS="100",
        LAMBDASTACK_SPEED__ARCHIVE_ROLL_S="0.3",
    )
    s = iso.settings
    master = s.path(s.data.master_dir)
    kafka.create_topics(s)
    events = make_events(3000, 21, items=50)
    logs = s.state_dir / "tests" / iso.tag

    def produce(batch) -> None:
        with EventProducer(s) as producer:
            for n, e in enumerate(batch):
                producer.send(e)
                if n % 7 == 0:  # a copy, as a client's retry sends it
                    producer.send(e)
                if n % 500 == 0:
                    producer.send_raw(b"bad", BAD[(n // 500) % 2])
                if n % 100 == 0:
                    producer.flush()
                    time.sleep(0.1)

    first = start_cli("archive-1", ["speed", "archive"], iso.env, logs)
    stopper.append(first)
    produce(events[:200])
    eventually(lambda: _archived(master) >= 200, 90, "the archiver at work", 0.2)
    sender = threading.Thread(target=produce, args=(events[200:],))
    sender.start()
    eventually(lambda: _archived(master) >= 600, 60, "more rolls", 0.05)
    _kill(first)  # SIGKILL mid-way, while events keep coming
    at_kill = _archived(master)
    sender.join()
    assert at_kill < len(events), "the crash came too late to test anything"

    second = start_cli("archive-2", ["speed", "archive"], iso.env, logs)
    stopper.append(second)
    eventually(lambda: _archived(master) >= len(events), 60, "every event archived", 0.2)
    with EventProducer(s) as producer:  # copies of events archived before the crash, sent after it
        for e in events[:100]:
            producer.send(e)
    time.sleep(2)
    second.stop(timeout_s=20)  # SIGTERM: a graceful stop writes what it read
    # those 100 only known as copies from the files the first one wrote (remembered on start)
    assert (_copies_left_out(second) or 0) >= 100, second.log_tail(5)

    table = read(master)
    ids = table["event_id"].to_pylist()
    assert len(ids) == len(set(ids)) == len(events), "an event was lost or archived twice"
    assert set(ids) == {e.event_id for e in events}
    assert not list((master / "_staging").glob("kafka-*")), "a staged roll was left behind"
    row = {r["event_id"]: r for r in table.to_pylist()}[events[0].event_id]
    assert (row["item_id"], row["type"], int(row["event_time"].timestamp() * 1000)) == (
        events[0].item_id,
        events[0].type,
        events[0].event_time_ms,
    )
    _batch_reader_sees(spark, s, len(events))


def _copies_left_out(proc) -> int | None:
    m = re.search(r"\[archive\] stopped \(\d+ events archived, (\d+) copies left out\)", proc.log_tail(5))
    return int(m.group(1)) if m else None


def _kill(proc) -> None:
    import os
    import signal

    pid = proc.pid()
    assert pid is not None, proc.log_tail(20)
    os.killpg(os.getpgid(pid), signal.SIGKILL)


def _batch_reader_sees(spark, settings, n: int) -> None:
    """The batch job's own reader (Spark, de-duplicating by event_id) counts every event."""
    from batch.job import _read_events

    df = _read_events(spark, settings.path(settings.data.master_dir), int(time.time() * 1000) + 86_400_000)
    assert df.count() == n
