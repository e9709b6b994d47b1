"""The whole batch job on a real Spark standalone cluster (a master and a worker started from
pyspark's own scripts) gives the same views as local mode."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lambdastack.versions import VersionLayout
from tests.conftest import Isolated
from tests.integration.helpers import eventually, load_synthetic, run_cli
from tools.stack import spark

pytestmark = pytest.mark.integration
START = 1_767_225_600_000  # 2026-01-01
AS_OF = "2026-01-04T00:00:00Z"


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[str, int, Path]]:
    """A standalone master and one worker (1 core, 1g); (master URL, UI port, state dir)."""
    state = tmp_path / "spark-cluster"
    master_port, ui_port, worker_ui_port = _free_ports(3)
    url = spark.start_standalone(state, master_port, ui_port, worker_ui_port, cores=1, memory="1g")
    try:
        yield url, ui_port, state
    finally:
        spark.stop_standalone(state)


def _rows(layout: VersionLayout, vid: str, view: str, key: str) -> list[dict]:
    return sorted(pq.read_table(layout.view_dir(vid, view)).to_pylist(), key=lambda r: r[key])


def test_the_whole_job_runs_on_a_standalone_cluster_like_in_local_mode(
    isolated: Isolated, cluster: tuple[str, int, Path], tmp_path: Path
):
    s = isolated.settings
    load_synthetic(s, n_users=40, n_items=60, n_events=2000, seed=11, start_ms=START, days=4)
    url, ui_port, state = cluster
    # The reference run in local mode goes alongside, into its own views directory.
    env = {**isolated.env, "PYSPARK_PYTHON": sys.executable}
    local_env = {**env, "LAMBDASTACK_DATA__VIEWS_DIR": str(tmp_path / "views-local")}
    local = subprocess.Popen(
        [sys.executable, "-m", "tools", "batch", "run", "--master", "local[2]", "--as-of", AS_OF],
        env=local_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        done = run_cli(["batch", "run", "--master", url, "--as-of", AS_OF], env, timeout_s=300)
        local_out, local_err = local.communicate(timeout=300)
    finally:
        local.kill()
    worker_log = spark.worker_process(state).log_tail(40)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-3000:]}\nworker log:\n{worker_log}"
    assert local.returncode == 0, f"{local_out}\n{local_err[-3000:]}"

    on_cluster = VersionLayout(s.path(s.data.views_dir))
    in_local = VersionLayout(tmp_path / "views-local")
    vid, local_vid = on_cluster.current(), in_local.current()
    assert vid is not None and done.stdout.strip().endswith(vid)
    assert local_vid is not None and local_out.strip().endswith(local_vid)
    a, b = on_cluster.manifest(vid), in_local.manifest(local_vid)
    assert a["as_of_ms"] == b["as_of_ms"] == 1_767_484_800_000
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
