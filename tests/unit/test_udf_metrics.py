"""The speed job's function metrics: Flink's Prometheus reporter in the job's (or the cluster's)
configuration, its jar on the mini-cluster's class path, and the gauges a version follower
registers, read as Flink reads them (by calling them)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from lambdastack.follower import VersionFollower
from lambdastack.settings import load_settings
from lambdastack.versions import MANIFEST, VersionLayout
from speed import udf_metrics
from speed.options import RunOptions, flink_config
from tools.stack.flink import cluster_config

pytestmark = pytest.mark.unit
CONF = Path(__file__).resolve().parents[2] / "conf" / "lambdastack.yaml"
FACTORY = "metrics.reporter.prom.factory.class"


def _settings(tmp_path: Path, **env: str):
    return load_settings(CONF, environ={"LAMBDASTACK_STACK__STATE_DIR": str(tmp_path / "state"), **env})


def test_the_local_job_reports_on_the_port_in_conf_and_a_cluster_on_a_range_of_its_own(tmp_path):
    s = _settings(tmp_path, LAMBDASTACK_SPEED__FLINK_METRICS_PORT="9350")
    local = flink_config(s, RunOptions(), "")
    assert local[FACTORY] == udf_metrics.REPORTER_FACTORY and local["metrics.reporter.prom.port"] == "9350"
    remote = flink_config(s, RunOptions(cluster="127.0.0.1:8081"), "")
    assert FACTORY not in remote  # a cluster's reporters are the cluster's
    cluster = cluster_config(s, tmp_path)
    assert cluster[FACTORY] == udf_metrics.REPORTER_FACTORY
    assert cluster["metrics.reporter.prom.port"] == "9350-9358"  # the JobManager and each TaskManager
    off = _settings(tmp_path, LAMBDASTACK_SPEED__FLINK_METRICS_PORT="0")
    assert FACTORY not in flink_config(off, RunOptions(), "") and FACTORY not in cluster_config(off, tmp_path)


def test_the_reporter_jar_goes_once_onto_the_launchers_class_path(monkeypatch):
    jar = udf_metrics.reporter_jar()
    assert jar.is_file() and jar.name.startswith("flink-metrics-prometheus-")
    monkeypatch.setenv("HADOOP_CLASSPATH", "/opt/hadoop/a.jar")
    udf_metrics.put_reporter_on_classpath()
    udf_metrics.put_reporter_on_classpath()
    assert os.environ["HADOOP_CLASSPATH"] == f"/opt/hadoop/a.jar:{jar}"


class Group:
    """Flink's metric group as a function sees it: named subgroups and gauges (callables)."""

    def __init__(self, path: tuple[str, ...] = (), gauges: dict[str, Any] | None = None):
        self.path, self.gauges = path, {} if gauges is None else gauges

    def add_group(self, name: str) -> Group:
        return Group((*self.path, name), self.gauges)

    def gauge(self, name: str, obj: Any) -> None:
        self.gauges[".".join((*self.path, name))] = obj


class Context:
    def __init__(self) -> None:
        self.group = Group()

    def get_metric_group(self) -> Group:
        return self.group


def test_the_gauges_show_the_failed_loads_the_failing_version_and_the_one_in_use(tmp_path):
    layout = VersionLayout(tmp_path / "views")
    for vid in ("v000001", "v000002"):
        layout.version_dir(vid).mkdir(parents=True)
        (layout.version_dir(vid) / MANIFEST).write_text("{}")
    bad = {"v000002"}

    def load(published: Any) -> str:
        if published.version in bad:
            raise ValueError("not an ONNX model")
        return published.version

    clock = [0.0]
    follower = VersionFollower(layout, load, 1.0, lambda: clock[0], background=False)
    ctx = Context()
    udf_metrics.follower_gauges(ctx, "score_fresh", follower)
    read = {name: g for name, g in ctx.group.gauges.items()}
    prefix = "lambdastack.score_fresh."
    assert sorted(read) == [
        prefix + n for n in ("model_load_failing", "model_load_failures", "model_version")
    ]

    def values() -> tuple[int, int, int]:
        return tuple(
            read[prefix + n]() for n in ("model_load_failures", "model_load_failing", "model_version")
        )

    assert values() == (0, 0, -1)
    layout.set_current("v000001")
    follower.current()
    assert values() == (0, 0, 1)
    layout.set_current("v000002")
    clock[0] = 1.0
    follower.current()
    assert values() == (1, 1, 1)  # the old version stays in use
    bad.clear()
    clock[0] = 3.0
    follower.current()
    assert values() == (1, 0, 2)
