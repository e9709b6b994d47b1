"""The whole batch job on a real Spark standalone cluster (a master and a worker started from
pyspark's own scripts) gives the same views as local mode."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lambdastack.versions import VersionLayout
from tests.conftest import Isolated
from tests.integration.conftest import SharedVersion
from tests.integration.helpers import eventually, free_ports, run_cli
from tools.stack import spark

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[str, int, Path]]:
    """A standalone master and one worker (1 core, 1g); (master URL, UI port, state dir)."""
    state = tmp_path / "spark-cluster"
    master_port, ui_port, worker_ui_port = free_ports(3)
    url = spark.start_standalone(state, master_port, ui_port, worker_ui_port, cores=1, memory="1g")
    try:
        yield url, ui_port, state
    finally:
        spark.stop_standalone(state)


def _rows(layout: VersionLayout, vid: str, view: str, key: str) -> list[dict]:
    return sorted(pq.read_table(layout.view_dir(vid, view)).to_pylist(), key=lambda r: r[key])


def test_the_whole_job_runs_on_a_standalone_cluster_like_in_local_mode(
    isolated: Isolated, cluster: tuple[str, int, Path], tmp_path: Path, shared_version: SharedVersion
):
    # The reference run in local mode is the session's newer version: the same job (batch.spark_master
    # is local[2]) on the same master dataset, which the cluster run reads into its own views directory.
    in_local = shared_version.layout
    local_vid = shared_version.versions[-1]
    assert local_vid in in_local.list_versions()
    b = in_local.manifest(local_vid)
    as_of = datetime.fromtimestamp(b["as_of_ms"] / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    url, ui_port, state = cluster
    env = {
        **isolated.env,
        **shared_version.data_env(views_dir=tmp_path / "views-cluster"),
        "PYSPARK_PYTHON": sys.executable,
    }
    done = run_cli(["batch", "run", "--master", url, "--as-of", as_of], env, timeout_s=300)
    worker_log = spark.worker_process(state).log_tail(40)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-3000:]}\nworker log:\n{worker_log}"

    on_cluster = VersionLayout(tmp_path / "views-cluster")
    vid = on_cluster.current()
    assert vid is not None and done.stdout.strip().endswith(vid)
    a = on_cluster.manifest(vid)
    bucket_ms = isolated.settings.batch.bucket_s * 1000
    asked = shared_version.asked_as_of_ms[-1]
    assert a["as_of_ms"] == b["as_of_ms"] == asked - asked % bucket_ms
    assert a["input"] == b["input"]
    for view, key in (("item_stats", "item_id"), ("user_history", "user_id"), ("items", "item_id")):
        assert a["rows"][view] == b["rows"][view]
        assert _rows(on_cluster, vid, view, key) == _rows(in_local, local_vid, view, key), view

    # It really ran there: the master finished one application, the worker launched its executor.
    def completed() -> list[tuple[str, str]]:
        status = spark.cluster_status("127.0.0.1", ui_port) or {}
        return [(app["name"], app["state"]) for app in status.get("completedapps", [])]

    assert eventually(completed, 30, "the application's end on the master") == [
        ("lambdastack-batch", "FINISHED")
    ]
    log = spark.worker_process(state).log_file.read_text(errors="replace")
    assert "Asked to launch executor app-" in log
