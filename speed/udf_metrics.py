"""The metrics the speed job's Python functions report through Flink's own metric system, and
Flink's Prometheus reporter that exports them with every other metric of the job.

A function that follows CURRENT (the per-event scoring, the drift bins) registers three gauges
on its metric group `lambdastack.<function>`: the failed loads so far, whether the newest load
failed (the previous version stays in use, retried with backoff), and the number of the version
in use. The reporter (`speed.flink_metrics_port`) serves them as
`flink_taskmanager_job_task_operator_lambdastack_<function>_model_load_failures` and so on, one
series per subtask. PyFlink sends a function's gauges to the JVM when a bundle ends, so they move
while events flow, which is when the function follows CURRENT.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

from lambdastack.errors import ServiceError
from lambdastack.follower import VersionFollower

REPORTER_FACTORY = "org.apache.flink.metrics.prometheus.PrometheusReporterFactory"


def version_number(vid: str | None) -> int:
    """v000012 -> 12; -1 before any version is loaded."""
    return int(vid.lstrip("v")) if vid else -1


def follower_gauges(function_context: Any, function: str, follower: VersionFollower[Any]) -> None:
    """Register the follower's gauges on the function's metric group."""
    group = function_context.get_metric_group().add_group("lambdastack").add_group(function)
    group.gauge("model_load_failures", lambda: follower.failures)
    group.gauge("model_load_failing", lambda: int(follower.failing is not None))
    group.gauge("model_version", lambda: version_number(follower.version))


def reporter_config(port: int | str) -> dict[str, str]:
    """Flink keys of the Prometheus reporter on `port` (a port or a range like 9250-9251)."""
    return {
        "metrics.reporter.prom.factory.class": REPORTER_FACTORY,
        "metrics.reporter.prom.port": str(port),
    }


def reporter_jar() -> Path:
    """The reporter's jar that ships with PyFlink (its plugins/ folder)."""
    import pyflink

    plugins = os.path.join(os.path.dirname(pyflink.__file__), "plugins")
    found = glob.glob(os.path.join(plugins, "metrics-prometheus", "*.jar"))
    if not found:
        raise ServiceError("speed.flink_metrics_port: PyFlink's Prometheus reporter jar is missing")
    return Path(found[0])


def put_reporter_on_classpath() -> None:
    """A local mini-cluster loads no plugins, only reporters on its JVM's class path: PyFlink's
    launcher appends HADOOP_CLASSPATH to it, so the reporter's jar goes there."""
    jar = str(reporter_jar())
    current = os.environ.get("HADOOP_CLASSPATH", "")
    if jar not in current.split(os.pathsep):
        os.environ["HADOOP_CLASSPATH"] = os.pathsep.join(p for p in (current, jar) if p)
