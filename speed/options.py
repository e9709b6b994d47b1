"""Flink configuration of the speed job: fault tolerance, state mapping, where it runs.

Pure: settings and run options in, a flat dict of Flink keys out (tested without Flink).

Savepoint compatibility: the job is SQL, so its operators get their uids from the planner.
`table.exec.uid.generation: ALWAYS` makes the planner set a uid on every transformation
(`<node id>_<transformation>`), not only for compiled plans; node ids are assigned in planning
order, so the same statements planned by the same Flink version yield the same uids and a
savepoint maps its state back. `execution.savepoint.ignore-unclaimed-state: false` makes a resume
fail loudly, instead of dropping state, when a changed query no longer matches a savepoint.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from lambdastack.errors import ConfigError
from lambdastack.settings import Settings
from speed.udf_metrics import reporter_config


@dataclass(frozen=True)
class RunOptions:
    """How `speed run` runs the job: `cluster` is a JobManager's REST HOST:PORT (None: local)."""

    parallelism: int | None = None
    cluster: str | None = None
    from_savepoint: str | None = None


def parse_cluster(address: str) -> tuple[str, int]:
    """HOST:PORT of a JobManager's REST API, checked."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"--cluster: {address!r} is not HOST:PORT of a Flink REST API (e.g. 127.0.0.1:8081)"
        )
    return host, int(port)


def checkpoint_dir(settings: Settings) -> Path:
    d = settings.speed.checkpoint_dir
    return settings.path(d) if d else settings.state_dir / "flink" / "checkpoints"


def savepoint_dir(settings: Settings) -> Path:
    d = settings.speed.savepoint_dir
    return settings.path(d) if d else settings.state_dir / "flink" / "savepoints"


def savepoint_uri(path: str) -> str:
    """A savepoint given as a local path or a URI, as a URI."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:", path):  # file:/..., s3://..., as Flink prints them
        return path
    p = Path(path).resolve()
    if not p.exists():
        raise ConfigError(f"--from-savepoint: {path} does not exist")
    return p.as_uri()


def _restart(settings: Settings) -> dict[str, str]:
    s = settings.speed
    if s.restart_strategy == "fixed-delay":
        return {
            "restart-strategy.type": "fixed-delay",
            "restart-strategy.fixed-delay.attempts": str(s.restart_attempts),
            "restart-strategy.fixed-delay.delay": f"{s.restart_delay_ms} ms",
        }
    return {
        "restart-strategy.type": "exponential-delay",
        "restart-strategy.exponential-delay.initial-backoff": f"{s.restart_delay_ms} ms",
        "restart-strategy.exponential-delay.max-backoff": f"{s.restart_max_delay_ms} ms",
        "restart-strategy.exponential-delay.attempts-before-reset-backoff": str(s.restart_attempts),
    }


def _target(settings: Settings, options: RunOptions) -> dict[str, str]:
    if options.cluster is None:
        return {
            "execution.target": "local",
            "taskmanager.memory.process.size": settings.speed.taskmanager_memory,
        }
    host, port = parse_cluster(options.cluster)
    return {"execution.target": "remote", "rest.address": host, "rest.port": str(port)}


def flink_config(settings: Settings, options: RunOptions, connector_uri: str) -> dict[str, str]:
    """Every Flink key `speed run` sets."""
    s = settings.speed
    conf = {
        "pipeline.jars": connector_uri,
        "pipeline.name": "lambdastack-speed",
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        "python.fn-execution.bundle.time": str(s.bundle_time_ms),
        "python.fn-execution.bundle.size": str(s.bundle_size),
        "execution.buffer-timeout": f"{s.buffer_timeout_ms} ms",
        "parallelism.default": str(options.parallelism or s.parallelism),
        "table.exec.state.ttl": f"{s.state_ttl_s} s",
        "table.exec.uid.generation": "ALWAYS",
        "table.exec.uid.format": "<id>_<transformation>",
        "execution.checkpointing.interval": f"{s.checkpoint_interval_ms} ms",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "execution.checkpointing.dir": checkpoint_dir(settings).as_uri(),
        "execution.checkpointing.savepoint-dir": savepoint_dir(settings).as_uri(),
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "execution.checkpointing.num-retained": "3",
        **_restart(settings),
        **_target(settings, options),
    }
    if s.flink_metrics_port and options.cluster is None:  # a cluster's reporter is its own (stack/flink.py)
        conf.update(reporter_config(s.flink_metrics_port))
    if s.mini_batch_latency_ms > 0:
        conf["table.exec.mini-batch.enabled"] = "true"
        conf["table.exec.mini-batch.allow-latency"] = f"{s.mini_batch_latency_ms} ms"
        conf["table.exec.mini-batch.size"] = str(s.mini_batch_size)
    if options.from_savepoint:
        conf["execution.savepoint.path"] = savepoint_uri(options.from_savepoint)
        conf["execution.savepoint.ignore-unclaimed-state"] = "false"
    return conf
