"""Pure parts of the speed runtime: Flink options, archive naming and recovery, freshness, bench stats."""

from __future__ import annotations

import json
from collections import namedtuple
from pathlib import Path

import pytest

from lambdastack.errors import ConfigError
from lambdastack.events import Event
from lambdastack.master import read
from lambdastack.settings import load_settings
from speed import archive
from speed.control import job_file, latest_file, record_savepoint, resolve_savepoint
from speed.metrics import covered_time, freshness_seconds
from speed.options import RunOptions, flink_config, parse_cluster
from tools.bench.speed import INVALID_EVERY, payloads, percentiles

pytestmark = pytest.mark.unit
CONF = Path(__file__).resolve().parents[2] / "conf" / "lambdastack.yaml"
Rec = namedtuple("Rec", "key value timestamp")


def _settings(tmp_path: Path, **env: str):
    return load_settings(CONF, environ={"LAMBDASTACK_STACK__STATE_DIR": str(tmp_path / "state"), **env})


def test_the_job_checkpoints_exactly_once_restarts_and_sets_uids(tmp_path):
    conf = flink_config(_settings(tmp_path), RunOptions(), "file:///c.jar")
    assert conf["execution.checkpointing.mode"] == "EXACTLY_ONCE"
    assert conf["execution.checkpointing.interval"] == "5000 ms"
    assert conf["execution.checkpointing.dir"] == (tmp_path / "state" / "flink" / "checkpoints").as_uri()
    assert conf["execution.checkpointing.externalized-checkpoint-retention"] == "RETAIN_ON_CANCELLATION"
    assert conf["restart-strategy.type"] == "exponential-delay"
    assert conf["table.exec.uid.generation"] == "ALWAYS"
    assert conf["execution.target"] == "local"
    assert "execution.savepoint.path" not in conf and "table.exec.mini-batch.enabled" not in conf


def test_cluster_savepoint_fixed_delay_and_mini_batch_options(tmp_path):
    s = _settings(
        tmp_path,
        LAMBDASTACK_SPEED__RESTART_STRATEGY="fixed-delay",
        LAMBDASTACK_SPEED__MINI_BATCH_LATENCY_MS="50",
    )
    (tmp_path / "sp").mkdir()
    conf = flink_config(
        s, RunOptions(parallelism=2, cluster="10.0.0.5:8081", from_savepoint=str(tmp_path / "sp")), ""
    )
    assert (conf["execution.target"], conf["rest.address"], conf["rest.port"]) == (
        "remote",
        "10.0.0.5",
        "8081",
    )
    assert conf["parallelism.default"] == "2"
    assert conf["execution.savepoint.path"] == (tmp_path / "sp").as_uri()
    assert conf["execution.savepoint.ignore-unclaimed-state"] == "false"
    given = flink_config(s, RunOptions(from_savepoint="file:/x/savepoint-1"), "")
    assert given["execution.savepoint.path"] == "file:/x/savepoint-1"
    assert conf["restart-strategy.fixed-delay.attempts"] == "20"
    assert conf["table.exec.mini-batch.allow-latency"] == "50 ms"


@pytest.mark.parametrize("bad", ["localhost", ":8081", "host:port", "host:70000"])
def test_a_bad_cluster_address_is_rejected_with_the_option_name(bad):
    with pytest.raises(ConfigError, match="--cluster"):
        parse_cluster(bad)
    assert parse_cluster("flink.local:8081") == ("flink.local", 8081)


def test_a_missing_savepoint_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="--from-savepoint"):
        flink_config(_settings(tmp_path), RunOptions(from_savepoint=str(tmp_path / "nope")), "")
    s = _settings(tmp_path)
    with pytest.raises(ConfigError, match="no savepoint recorded"):
        resolve_savepoint(s, "latest")
    record_savepoint(s, "file:/x/savepoint-1")
    assert resolve_savepoint(s, "latest") == "file:/x/savepoint-1"
    assert resolve_savepoint(s, "/given") == "/given"
    assert latest_file(s).parent == tmp_path / "state" / "flink" / "savepoints"


def test_checkpoint_is_the_newest_completed_checkpoint_of_the_last_job(tmp_path):
    s = _settings(tmp_path)
    with pytest.raises(ConfigError, match="no job recorded"):
        resolve_savepoint(s, "checkpoint")
    job_file(s).parent.mkdir(parents=True, exist_ok=True)
    job_file(s).write_text("j2\n")
    root = tmp_path / "state" / "flink" / "checkpoints"
    with pytest.raises(ConfigError, match="job j2 has no completed checkpoint"):
        resolve_savepoint(s, "checkpoint")
    for job, n, done in [("j1", 30, True), ("j2", 9, True), ("j2", 10, True), ("j2", 11, False)]:
        (root / job / f"chk-{n}").mkdir(parents=True)
        if done:
            (root / job / f"chk-{n}" / "_metadata").write_bytes(b"m")
    # chk-11 is in progress (no _metadata), chk-30 belongs to an older job; chk-10 sorts after chk-9
    assert resolve_savepoint(s, "checkpoint") == str(root / "j2" / "chk-10")


def _events(n: int, day_ms: int = 1_767_225_600_000) -> list[Event]:
    return [Event(f"e{i}", "u", "i", "view", 1.0, day_ms + i * 3_600_000) for i in range(n)]


def test_rolls_are_named_by_offsets_and_resume_after_the_highest(tmp_path):
    master = tmp_path / "master"
    assert archive.write_roll(_events(30), master, archive.roll_id("t.events", 0, 0, 41)) == 30
    archive.write_roll(_events(2), master, archive.roll_id("t.events", 1, 5, 9))
    archive.write_roll(_events(2), master, archive.roll_id("other", 0, 0, 99))
    assert archive.next_offsets(master, "t.events") == {0: 42, 1: 10}
    assert sorted(p.name for p in master.glob("event_date=*")) == [
        "event_date=2026-01-01",
        "event_date=2026-01-02",
    ]
    assert read(master).num_rows == 34


def test_recovery_undoes_an_interrupted_roll_so_its_offsets_are_read_again(tmp_path):
    master = tmp_path / "master"
    archive.write_roll(_events(3), master, archive.roll_id("t", 0, 0, 9))
    # a crash in the middle of the renames of the next roll: one file in place, staging left behind
    rid = archive.roll_id("t", 0, 10, 19)
    staged = master / archive.STAGING / rid / "event_date=2026-01-02"
    staged.mkdir(parents=True)
    (staged / f"part-{rid}-0.parquet").write_bytes(b"x")
    (master / "event_date=2026-01-01" / f"part-{rid}-0.parquet").write_bytes(b"x")
    assert archive.next_offsets(master, "t") == {0: 20}
    assert archive.recover(master) == 1
    assert archive.next_offsets(master, "t") == {0: 10}
    assert not list((master / archive.STAGING).iterdir())
    assert read(master).num_rows == 3


def test_a_roll_is_due_by_rows_or_age():
    roll = archive.Roll(first=5, last=4, opened=100.0)
    assert not roll.due(1000.0, 10, 1.0)  # nothing read
    roll.add(5, None)
    assert roll.due(101.5, 10, 1.0) and not roll.due(100.5, 10, 1.0)
    for i in range(6, 16):
        roll.add(i, _events(1)[0])
    assert (roll.first, roll.last, len(roll.events)) == (5, 15, 10)
    assert roll.due(100.0, 10, 60.0)


def test_freshness_is_measured_from_the_newest_event_when_the_record_carries_it():
    assert covered_time(json.dumps({"cnt": 3, "max_event_ms": 1000}).encode(), 5000) == ("event_time", 1000)
    assert covered_time(json.dumps({"cnt": 3}).encode(), 5000) == ("signal_emit", 5000)
    assert covered_time(None, 5000) == ("signal_emit", 5000)
    got = freshness_seconds([Rec(b"k", b'{"cnt":1}', 1000), Rec(None, None, 0), Rec(b"k", None, 2500)], 2000)
    assert got == [("signal_emit", 1.0), ("signal_emit", 0.0)]


def test_bench_percentiles_and_payloads():
    assert percentiles([]) == {"p50": None, "p95": None, "p99": None, "max": None, "n": 0}
    p = percentiles([float(x) for x in range(1, 101)])
    assert (p["p50"], p["p95"], p["p99"], p["max"], p["n"]) == (50.0, 95.0, 99.0, 100.0, 100)
    batch = payloads(2 * INVALID_EVERY, items=10, users=5, time_ms=1_767_225_600_000)
    assert sum(b"bench-invalid" in b for b in batch) == 2
    first = json.loads(batch[0])
    assert first["event_time"] == "2026-01-01T00:00:00.000Z" and first["item_id"].startswith("i")


class _Client:
    """A job client whose status calls answer as scripted: a status string or an exception."""

    def __init__(self, answers):
        self.answers = list(answers)

    def get_job_status(self):
        answer = self.answers.pop(0) if self.answers else self.answers_last
        self.answers_last = answer
        if isinstance(answer, Exception):
            raise answer

        class _Done:
            def result(self_inner):
                return f"JobStatus.{answer}"

        return _Done()


def test_the_watch_stops_the_process_when_the_cluster_stops_answering():
    import threading

    from speed.job import _watch

    ended: list[str] = []
    client = _Client(["RUNNING", ConnectionError("refused")])
    _watch(client, threading.Event(), ended.append, unreachable_s=0.05, every_s=0.01)
    assert ended and "has not answered for" in ended[0] and "ConnectionError" in ended[0]


def test_the_watch_stops_the_process_when_the_job_ends_and_tolerates_a_brief_outage():
    import threading
    import time

    from speed.job import JobSeen, _watch

    ended: list[str] = []
    seen = JobSeen()
    client = _Client(["RUNNING", ConnectionError("blip"), "RUNNING", "FAILED"])
    _watch(client, threading.Event(), ended.append, unreachable_s=5.0, seen=seen, every_s=0.01)
    assert ended == ["the job ended by itself (FAILED)"]
    assert seen() is not None and abs(seen() - time.time() * 1000) < 5000  # noted at each RUNNING


def test_a_failing_companion_stops_the_process_with_its_reason():
    from speed.job import _guarded

    ended: list[str] = []

    def archiver():
        raise RecursionError("maximum recursion depth exceeded")

    _guarded("archiver", archiver, ended.append)()
    assert ended == ["the archiver failed: RecursionError: maximum recursion depth exceeded"]


class _Stoppable:
    def __init__(self) -> None:
        self.stopped = 0

    def stop(self) -> None:
        self.stopped += 1


def test_the_first_failure_is_kept_and_stops_the_loader_and_the_archiver():
    from speed.job import _Stopping

    loader, archiver = _Stoppable(), _Stoppable()
    stopping = _Stopping(loader, archiver, savepoint=False)
    stopping.fail("the job ended by itself (FAILED)")
    stopping.fail("the archiver failed: OSError: disk full")
    assert stopping.failure == "the job ended by itself (FAILED)"
    assert stopping.event.is_set() and loader.stopped == 2 and archiver.stopped == 2
    assert stopping.savepoint is False  # a failure stops as SIGTERM does, no savepoint asked


def test_sigusr1_asks_for_a_savepoint_and_a_signal_is_no_failure():
    import signal

    from speed.job import _Stopping

    stopping = _Stopping(_Stoppable(), None, savepoint=False)
    stopping.on_signal(signal.SIGUSR1, None)
    stopping.on_signal(signal.SIGTERM, None)  # a later SIGTERM keeps the savepoint asked for
    assert stopping.savepoint is True and stopping.event.is_set() and stopping.failure is None


def test_the_watch_stops_the_process_when_a_status_request_hangs():
    import threading
    import time

    from speed.job import _watch

    class _Hanging:
        def get_job_status(self):
            threading.Event().wait(30)  # a request to a dead JobManager: no answer, no error

    ended: list[str] = []
    stop = threading.Event()
    started = time.monotonic()
    _watch(_Hanging(), stop, ended.append, unreachable_s=0.3, every_s=0.01)
    stop.set()
    assert ended == ["the Flink cluster has not answered for 0 s (a status request is still waiting)"]
    assert time.monotonic() - started < 5


def test_the_local_jvm_gets_a_fixed_pretouched_heap():
    from speed.job import local_jvm_args

    s = load_settings(environ={"LAMBDASTACK_SPEED__LOCAL_HEAP_MB": "768"})
    args = local_jvm_args(s).split()
    assert args[: len(s.speed.jvm_opts.split())] == s.speed.jvm_opts.split()
    assert {"-Xms768m", "-Xmx768m", "-XX:+AlwaysPreTouch"} <= set(args)
    with pytest.raises(ConfigError, match="local_heap_mb"):
        load_settings(environ={"LAMBDASTACK_SPEED__LOCAL_HEAP_MB": "64"})


def test_the_archiver_finds_the_ids_of_the_files_written_within_the_ttl(tmp_path):
    """The ids of files written within the TTL are remembered on start (speed.archive)."""
    import time

    ids = [f"e{n}" for n in range(5)]
    events = [Event(i, "u", "i", "view", 1.0, 1_700_000_000_000) for i in ids]
    archive.write_roll(events, tmp_path, archive.roll_id("t", 0, 0, 4))
    found = archive.archived_since(tmp_path, "t", time.time() - 60)
    assert [sorted(i) for _, i in found] == [ids]
    assert archive.archived_since(tmp_path, "t", time.time() + 60) == []
    assert archive.archived_since(tmp_path, "other-topic", 0) == []
