"""A Spark standalone cluster (one master, one worker) from pyspark's own launch scripts.

The pip package of pyspark is a complete SPARK_HOME (`bin/spark-class`, `jars/`), so the cluster
runs the very Spark version the driver uses. Both daemons are ManagedProcesses under the state
directory: `run/spark-{master,worker}.pid`, `logs/spark-{master,worker}.log`; executors are
children of the worker and stop with it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import urllib.request
from pathlib import Path
from typing import Any

from lambdastack.errors import ServiceError
from tools.stack.process import ManagedProcess, port_open, wait_until

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


def spark_home() -> Path:
    """The installed pyspark package, which is a SPARK_HOME of the same version as the driver."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise ServiceError("pyspark is not installed in this environment; run `make venv`")
    home = Path(spec.origin).parent
    if not (home / "bin" / "spark-class").is_file() or not (home / "jars").is_dir():
        raise ServiceError(f"{home} has no bin/spark-class or jars/; reinstall pyspark")
    return home


def master_process(state_dir: Path) -> ManagedProcess:
    return ManagedProcess("spark-master", state_dir)


def worker_process(state_dir: Path) -> ManagedProcess:
    return ManagedProcess("spark-worker", state_dir)


def cluster_status(host: str, ui_port: int) -> dict[str, Any] | None:
    """The master's status (its web UI's /json/), or None when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://{host}:{ui_port}/json/", timeout=2) as r:
            return dict(json.loads(r.read()))
    except (OSError, ValueError):
        return None


def _alive_workers(host: str, ui_port: int) -> int:
    status = cluster_status(host, ui_port)
    return int(status.get("aliveworkers", 0)) if status else 0


def _env(state_dir: Path, host: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "SPARK_HOME": str(spark_home()),
            "SPARK_LOCAL_IP": host,
            "SPARK_LOG_DIR": str(state_dir / "logs"),
            "SPARK_WORKER_DIR": str(state_dir / "spark" / "work"),
        }
    )
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.setdefault("SPARK_DAEMON_MEMORY", "512m")  # the daemons only schedule; executors get --memory
    return env


def start_standalone(
    state_dir: Path,
    master_port: int,
    ui_port: int,
    worker_ui_port: int,
    cores: int = 1,
    memory: str = "1g",
    host: str = "127.0.0.1",
    timeout_s: float = 60.0,
) -> str:
    """Start a master and one worker (idempotent), wait until the worker registered; the master URL.

    On a failed start, whatever was started is stopped again.
    """
    master, worker = master_process(state_dir), worker_process(state_dir)
    url = f"spark://{host}:{master_port}"
    for port in (master_port, ui_port, worker_ui_port):
        if not (master.running() or worker.running()) and port_open(host, port):
            raise ServiceError(f"port {port} is taken by a process lambdastack did not start")
    spark_class = str(spark_home() / "bin" / "spark-class")
    env = _env(state_dir, host)
    work_dir = Path(env["SPARK_WORKER_DIR"])
    work_dir.mkdir(parents=True, exist_ok=True)
    try:
        master_args = ["--host", host, "--port", str(master_port), "--webui-port", str(ui_port)]
        master.start([spark_class, MASTER_CLASS, *master_args], env=env, cwd=state_dir)
        wait_until(
            lambda: port_open(host, master_port) and cluster_status(host, ui_port) is not None,
            timeout_s,
            "the Spark master",
            master,
        )
        worker_args = ["--host", host, "--cores", str(cores), "--memory", memory]
        worker_args += ["--webui-port", str(worker_ui_port), "--work-dir", str(work_dir)]
        worker.start([spark_class, WORKER_CLASS, url, *worker_args], env=env, cwd=state_dir)
        wait_until(lambda: _alive_workers(host, ui_port) >= 1, timeout_s, "the Spark worker", worker)
    except BaseException:
        stop_standalone(state_dir)
        raise
    return url


def stop_standalone(state_dir: Path, timeout_s: float = 20.0) -> bool:
    """Stop the worker (and its executors), then the master. True if either was running."""
    stopped_worker = worker_process(state_dir).stop(timeout_s)
    stopped_master = master_process(state_dir).stop(timeout_s)
    return stopped_worker or stopped_master
