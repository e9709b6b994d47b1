"""`lambdastack speed run`: the PyFlink job (local mini-cluster or a cluster), the Redis loader,
the archiver and the freshness metrics, in one process until SIGTERM."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from lambdastack import jars
from lambdastack.errors import ServiceError
from lambdastack.settings import Settings
from speed import plan, sql, udf_metrics, users
from speed.archive import Archiver
from speed.control import forget_run, record_run, record_savepoint
from speed.heap import fix_mmap_threshold
from speed.metrics import FreshnessMetrics
from speed.options import RunOptions, flink_config, parse_cluster, savepoint_dir

TERMINAL = ("FAILED", "CANCELED", "FINISHED")


def local_jvm_args(settings: Settings) -> str:
    """The local mini-cluster JVM's options: `speed.jvm_opts` and a heap of `speed.local_heap_mb`
    committed at start (Java's default, a quarter of the RAM, let the heap grow for minutes: a
    soak saw the JVM go from 1.1 to 2.1 GB in its second minute)."""
    heap = settings.speed.local_heap_mb
    return f"{settings.speed.jvm_opts} -Xms{heap}m -Xmx{heap}m -XX:+AlwaysPreTouch".strip()


def _table_env(settings: Settings, parallelism: int | None, options: RunOptions | None = None) -> Any:
    from pyflink.common import Configuration
    from pyflink.table import EnvironmentSettings, TableEnvironment

    connector = jars.flink_kafka_connector(settings)
    if not connector.is_file():
        raise ServiceError(f"the Flink Kafka connector {connector} is missing; run `lambdastack stack fetch`")
    options = options or RunOptions(parallelism=parallelism)
    # In a local mini-cluster pyflink runs the Python functions in this very process ("loopback")
    # by default, where they share one GIL with the Redis loader and the archiver. Worker
    # processes of their own, as on a cluster, let the job use every core.
    os.environ.setdefault("_python_worker_execution_mode", "process")
    # the local mini-cluster runs in the JVM pyflink launches next; JVM_ARGS reaches its command line
    if options.cluster is None:
        os.environ.setdefault("JVM_ARGS", local_jvm_args(settings))
    if settings.speed.flink_metrics_port and options.cluster is None:
        udf_metrics.put_reporter_on_classpath()
    config = Configuration()
    for key, value in flink_config(settings, options, connector.as_uri()).items():
        config.set_string(key, value)
    env_settings = EnvironmentSettings.new_instance().in_streaming_mode().with_configuration(config).build()
    return TableEnvironment.create(env_settings)


def _register_udf(t_env: Any) -> None:
    from pyflink.table import DataTypes
    from pyflink.table.udf import udf

    from speed.parse import as_sql_row, parse_record, row_fields

    types = {
        "BOOLEAN": DataTypes.BOOLEAN(),
        "STRING": DataTypes.STRING(),
        "DOUBLE": DataTypes.DOUBLE(),
        "BIGINT": DataTypes.BIGINT(),
        "INT": DataTypes.INT(),
    }
    row_type = DataTypes.ROW([DataTypes.FIELD(n, types[t]) for n, t in row_fields()])

    def parse_event(payload: bytes | None, partition: int | None = None, offset: int | None = None) -> Any:
        return as_sql_row(parse_record(payload, partition, offset, now_ms=int(time.time() * 1000)))

    t_env.create_temporary_function("parse_event", udf(parse_event, result_type=row_type))


def submit(settings: Settings, parallelism: int | None = None, options: RunOptions | None = None) -> Any:
    """Build and submit the job; returns the Flink TableResult (the job runs asynchronously)."""
    from speed import drift_pipeline

    t_env = _table_env(settings, parallelism, options)
    for key, value in sql.table_options(settings).items():
        t_env.get_config().set(key, value)
    _register_udf(t_env)
    # shared views first: the source, the parsed records, the valid events (event time `ts`)
    for ddl in (sql.source_ddl(settings), sql.parsed_view(), sql.valid_view(settings.batch.bucket_s)):
        t_env.execute_sql(ddl)
    statements = t_env.create_statement_set()
    # then one block per pipeline: its sink tables and its INSERTs
    t_env.execute_sql(sql.dead_letter_ddl(settings))
    statements.add_insert_sql(sql.insert_dead_letters(settings))
    t_env.execute_sql(sql.signals_ddl(settings))
    statements.add_insert_sql(sql.insert_signals())
    t_env.execute_sql(sql.minute_signals_ddl(settings))
    statements.add_insert_sql(sql.insert_minute_signals(settings))
    for ddl in (sql.trending_ddl(settings), sql.item_windows_view(settings)):
        t_env.execute_sql(ddl)
    statements.add_insert_sql(sql.insert_trending(settings))
    drift_pipeline.add_to(t_env, statements, settings)
    users.add_to(t_env, statements, settings)
    return plan.execute(t_env, statements, settings.speed.dedupe_ttl_s)


def _wait_running(client: Any, timeout_s: float) -> None:
    """Block until Flink reports the job RUNNING; fail with its status otherwise."""
    deadline = time.monotonic() + timeout_s
    status = None
    while time.monotonic() < deadline:
        status = str(client.get_job_status().result())
        if status.endswith("RUNNING"):
            return
        if status.rsplit(".", 1)[-1] in TERMINAL:
            break
        time.sleep(0.5)
    raise ServiceError(f"the speed job did not start running (status {status})")


def _status(client: Any) -> str:
    return str(client.get_job_status().result()).rsplit(".", 1)[-1]


class JobSeen:
    """When the Flink job last answered RUNNING (epoch ms; None before): set by the watch thread,
    read by the loader for its heartbeat (lambdastack.speed_health)."""

    def __init__(self) -> None:
        self.ms: int | None = None

    def __call__(self) -> int | None:
        return self.ms


def _watch(
    client: Any,
    stop: threading.Event,
    on_end: Callable[[str], None],
    unreachable_s: float,
    seen: JobSeen | None = None,
    every_s: float = 2.0,
) -> None:
    """Stop the process when the job ends by itself (e.g. restarts exhausted) or when its cluster
    has not answered for `unreachable_s` (a JobManager or mini-cluster JVM that died); note in
    `seen` each time it answers RUNNING. The status is asked in a thread of its own: a request to a
    dead JobManager can hang far longer than `unreachable_s` without failing, and the silence
    counts from the last answer whether the request failed or is still waiting."""
    poll = _StatusPoll(client, stop, seen, every_s)
    threading.Thread(target=poll.run, name="flink-job-status", daemon=True).start()
    while not stop.wait(min(every_s, 0.5)):
        if poll.ended is not None:
            on_end(poll.ended)
            return
        if time.monotonic() - poll.answered > unreachable_s:
            why = type(poll.error).__name__ if poll.error is not None else "a status request is still waiting"
            on_end(f"the Flink cluster has not answered for {unreachable_s:.0f} s ({why})")
            return


class _StatusPoll:
    """The job's status every `every_s`: when it last answered, the last error, how it ended."""

    def __init__(self, client: Any, stop: threading.Event, seen: JobSeen | None, every_s: float) -> None:
        self.client, self.stop, self.seen, self.every_s = client, stop, seen, every_s
        self.answered = time.monotonic()
        self.error: BaseException | None = None
        self.ended: str | None = None

    def run(self) -> None:
        while not self.stop.wait(self.every_s):
            try:
                status = _status(self.client)
            except Exception as e:  # noqa: BLE001 - briefly unreachable is not the job's end; long is
                self.error = e
                continue
            self.answered, self.error = time.monotonic(), None
            if self.seen is not None and status == "RUNNING":
                self.seen.ms = int(time.time() * 1000)
            if status in TERMINAL:
                self.ended = f"the job ended by itself ({status})"
                return


def _guarded(name: str, target: Callable[[], None], on_end: Callable[[str], None]) -> Callable[[], None]:
    """`target`, stopping the whole process if it fails (a dead companion never runs on quietly)."""

    def run() -> None:
        try:
            target()
        except BaseException as e:  # noqa: BLE001 - reported, and the process stops with an error
            on_end(f"the {name} failed: {type(e).__name__}: {e}")

    return run


def _stop_with_savepoint(client: Any, directory: str) -> str:
    """Stop the job with a canonical savepoint; its path (pyflink's wrapper misses the format arg)."""
    from pyflink.java_gateway import get_gateway

    canonical = get_gateway().jvm.org.apache.flink.core.execution.SavepointFormatType.CANONICAL
    for attempt in range(3):  # a job still deploying its tasks declines; it is ready moments later
        try:
            return str(client._j_job_client.stopWithSavepoint(False, directory, canonical).get())
        except Exception:
            if attempt == 2:
                raise
            time.sleep(5)
    raise AssertionError("unreachable")


def _bounded(call: Callable[[], str], timeout_s: float) -> str:
    """call() in a daemon thread; TimeoutError when it has not returned within timeout_s (a
    request to a dead JobManager can wait far longer without failing)."""
    box: list[str | BaseException] = []

    def run() -> None:
        try:
            box.append(call())
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            box.append(e)

    t = threading.Thread(target=run, name="flink-request", daemon=True)
    t.start()
    t.join(timeout_s)
    if not box:
        raise TimeoutError(f"no answer within {timeout_s:.0f} s")
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


def _stop_job(settings: Settings, client: Any, savepoint: bool) -> None:
    """Stop with a savepoint (its path printed and recorded for `--from-savepoint latest`), or cancel."""
    try:
        status = _bounded(lambda: _status(client), settings.speed.job_unreachable_s)
    except Exception as e:  # noqa: BLE001 - the job's JVM or cluster is gone; nothing to stop
        print(f"[speed] the job cannot be reached to stop it: {e}", file=sys.stderr, flush=True)
        return
    if status in TERMINAL:
        return
    if savepoint:
        try:
            path = _stop_with_savepoint(client, savepoint_dir(settings).as_uri())
        except Exception as e:  # noqa: BLE001 - fall back to cancel (checkpoints are retained)
            print(f"[speed] stop with savepoint failed, cancelling: {e}", file=sys.stderr, flush=True)
        else:
            record_savepoint(settings, path)
            print(f"[speed] stopped with savepoint {path}", flush=True)
            return
    try:
        client.cancel().result()
        print("[speed] job cancelled", flush=True)
    except Exception as e:  # noqa: BLE001 - the job may already be gone; say so and exit
        print(f"[speed] cancel: {e}", file=sys.stderr, flush=True)


def _companions(settings: Settings) -> tuple[FreshnessMetrics | None, Any, Archiver | None]:
    """What runs beside the job in this process: metrics exporter, Redis loader, archiver."""
    from speed.loader import SignalLoader

    s = settings.speed
    metrics = None
    if s.metrics_port:
        try:
            metrics = FreshnessMetrics().start(s.metrics_host, s.metrics_port)
        except ServiceError as e:  # another `speed run` holds the port: run on, without the exporter
            print(f"[speed] metrics exporter off: {e}", file=sys.stderr, flush=True)
    loader = SignalLoader(
        settings,
        on_applied=metrics.observe if metrics else None,
        on_drift=metrics.drift.observe if metrics else None,
        job_seen=JobSeen(),
    )
    if metrics is not None:
        metrics.watch(loader)
    on_archived = metrics.archived.inc if metrics else None
    archiver = Archiver(settings, on_archived) if s.archive_enabled else None
    return metrics, loader, archiver


class _Stopping:
    """How the process stops: by a signal (SIGUSR1 asks for a savepoint) or by the first failure
    reported to `fail` (the job ended by itself, a companion failed), which `run` raises at the end."""

    def __init__(self, loader: Any, archiver: Archiver | None, savepoint: bool) -> None:
        self.loader, self.archiver = loader, archiver
        self.event = threading.Event()
        self.savepoint = savepoint
        self.failure: str | None = None

    def on_signal(self, signum: int, frame: object) -> None:
        self.savepoint = self.savepoint or signum == signal.SIGUSR1
        self.event.set()
        self.loader.stop()
        if self.archiver is not None:
            self.archiver.stop()

    def fail(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason
            print(f"[speed] {reason}; stopping", file=sys.stderr, flush=True)
        self.on_signal(signal.SIGTERM, None)


def run(settings: Settings, options: RunOptions | None = None) -> None:
    """Run the job, the Redis loader, the archiver and the metrics exporter until SIGTERM/SIGINT
    (stop as `speed.savepoint_on_stop` says) or SIGUSR1 (stop with a savepoint)."""
    options = options or RunOptions()
    fix_mmap_threshold()  # before the loader and the archiver allocate (speed.heap)
    if options.cluster:
        parse_cluster(options.cluster)  # a bad address fails before anything starts
    metrics, loader, archiver = _companions(settings)
    stopping = _Stopping(loader, archiver, settings.speed.savepoint_on_stop)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        signal.signal(sig, stopping.on_signal)
    where = f"cluster {options.cluster}" if options.cluster else "a local mini-cluster"
    print(
        f"[speed] submitting the job to {where} "
        f"(topic {settings.topics.events} -> {settings.topics.signals}) ...",
        flush=True,
    )
    try:
        client = submit(settings, options.parallelism, options).get_job_client()
        _wait_running(client, settings.stack.ready_timeout_s * 2)
        record_run(settings, os.getpid(), str(client.get_job_id()))
        _run_beside(settings, client, stopping)
    finally:
        forget_run(settings, os.getpid())
        if metrics is not None:
            metrics.stop()
    if stopping.failure is not None:
        raise ServiceError(f"the speed job stopped: {stopping.failure}")


def _run_beside(settings: Settings, client: Any, stopping: _Stopping) -> None:
    """Beside the running job: the watch thread and the archiver thread, the loader in this thread
    until it stops; then the archiver is joined and the job stopped (savepoint or cancel)."""
    loader, archiver = stopping.loader, stopping.archiver
    threads = [
        threading.Thread(
            target=_watch,
            args=(client, stopping.event, stopping.fail, settings.speed.job_unreachable_s, loader.job_seen),
            daemon=True,
        )
    ]
    if archiver is not None:
        threads.append(
            threading.Thread(target=_guarded("archiver", archiver.run, stopping.fail), name="archiver")
        )
    for t in threads:
        t.start()
    print(f"[speed] job {client.get_job_id()} running; loading signals into Redis", flush=True)
    try:
        _guarded("Redis loader", loader.run, stopping.fail)()  # a failure stops all, with its reason
    finally:
        stopping.event.set()
        if archiver is not None:
            archiver.stop()
        for t in threads[1:]:
            t.join()
        print(f"[speed] stopping ({loader.records} signal records loaded)", flush=True)
        _stop_job(settings, client, stopping.savepoint)
