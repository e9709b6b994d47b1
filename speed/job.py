"""`lambdastack speed run`: the PyFlink job (local mini-cluster) plus the Redis loader."""

from __future__ import annotations

import signal
import sys
import time
from typing import Any

from lambdastack.errors import ServiceError
from lambdastack.settings import Settings
from lambdastack.stack import jvm
from speed import sql


def _table_env(settings: Settings, parallelism: int | None) -> Any:
    from pyflink.table import EnvironmentSettings, TableEnvironment

    connector = jvm.flink_kafka_connector(settings)
    if not connector.is_file():
        raise ServiceError(f"the Flink Kafka connector {connector} is missing; run `lambdastack stack fetch`")
    s = settings.speed
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = t_env.get_config()
    for key, value in {
        "pipeline.jars": connector.as_uri(),
        "pipeline.name": "lambdastack-speed",
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        "python.fn-execution.bundle.time": str(s.bundle_time_ms),
        "python.fn-execution.bundle.size": str(s.bundle_size),
        "execution.buffer-timeout": f"{s.buffer_timeout_ms} ms",
        "parallelism.default": str(parallelism or s.parallelism),
        "table.exec.state.ttl": f"{s.state_ttl_s} s",
        "execution.checkpointing.interval": "10 s",
        "taskmanager.memory.process.size": "1536m",
    }.items():
        conf.set(key, value)
    return t_env


def _register_udf(t_env: Any) -> None:
    from pyflink.table import DataTypes
    from pyflink.table.udf import udf

    from speed.parse import as_sql_row, parse_payload, row_fields

    types = {
        "BOOLEAN": DataTypes.BOOLEAN(),
        "STRING": DataTypes.STRING(),
        "DOUBLE": DataTypes.DOUBLE(),
        "BIGINT": DataTypes.BIGINT(),
    }
    row_type = DataTypes.ROW([DataTypes.FIELD(n, types[t]) for n, t in row_fields()])

    def parse_event(payload: str | None) -> Any:
        return as_sql_row(parse_payload(payload, now_ms=int(time.time() * 1000)))

    t_env.create_temporary_function("parse_event", udf(parse_event, result_type=row_type))


def submit(settings: Settings, parallelism: int | None = None) -> Any:
    """Build and submit the job; returns the Flink TableResult (the job runs asynchronously)."""
    t_env = _table_env(settings, parallelism)
    _register_udf(t_env)
    for ddl in (
        sql.source_ddl(settings),
        sql.dead_letter_ddl(settings),
        sql.signals_ddl(settings),
        sql.parsed_view(),
        sql.valid_view(settings.batch.bucket_s),
    ):
        t_env.execute_sql(ddl)
    statements = t_env.create_statement_set()
    statements.add_insert_sql(sql.insert_dead_letters(settings))
    statements.add_insert_sql(sql.INSERT_SIGNALS)
    return statements.execute()


def _wait_running(client: Any, timeout_s: float) -> None:
    """Block until Flink reports the job RUNNING; fail with its status otherwise."""
    deadline = time.monotonic() + timeout_s
    status = None
    while time.monotonic() < deadline:
        status = str(client.get_job_status().result())
        if status.endswith("RUNNING"):
            return
        if status.endswith(("FAILED", "CANCELED", "FINISHED")):
            break
        time.sleep(0.5)
    raise ServiceError(f"the speed job did not start running (status {status})")


def run(settings: Settings, parallelism: int | None = None) -> None:
    """Run the job and the loader until SIGTERM/SIGINT."""
    from speed.loader import SignalLoader

    loader = SignalLoader(settings)

    def _stop(signum: int, frame: object) -> None:
        loader.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(
        f"[speed] submitting the job (topic {settings.topics.events} -> {settings.topics.signals}) ...",
        flush=True,
    )
    result = submit(settings, parallelism)
    client = result.get_job_client()
    _wait_running(client, settings.stack.ready_timeout_s * 2)
    print(f"[speed] job {client.get_job_id()} running; loading signals into Redis", flush=True)
    try:
        loader.run()
    finally:
        print(f"[speed] stopping ({loader.records} signal records loaded)", flush=True)
        try:
            client.cancel().result()
        except Exception as e:  # noqa: BLE001 - the job may already be gone; say so and exit
            print(f"[speed] cancel: {e}", file=sys.stderr)
