"""A Flink standalone cluster (one JobManager, TaskManagers) from pyflink's own launch scripts.

The pip package of apache-flink is a Flink distribution (`bin/`, `lib/`, `opt/`), so the cluster
runs the very Flink version the client uses. The cluster gets its own home under the state
directory: `flink/conf/config.yaml` (written from `speed:` settings), `flink/lib/` (links to the
package's `lib/` jars plus `opt/flink-python`, which Python UDFs need on the TaskManagers).
Daemons are ManagedProcesses: `run/flink-jobmanager.pid`, `run/flink-taskmanager-N.pid`, logs
beside them. A TaskManager runs in its own process group with its Python UDF workers, so
stopping or killing the group takes the workers with it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import urllib.request
from pathlib import Path
from typing import Any

import psutil

from lambdastack.errors import ServiceError
from lambdastack.settings import Settings
from speed.udf_metrics import reporter_config
from tools.stack.process import ManagedProcess, port_open, wait_until


def flink_home() -> Path:
    """The installed pyflink package, a Flink distribution of the client's version."""
    spec = importlib.util.find_spec("pyflink")
    if spec is None or spec.origin is None:
        raise ServiceError("apache-flink (pyflink) is not installed in this environment; run `make venv`")
    home = Path(spec.origin).parent
    if not (home / "bin" / "taskmanager.sh").is_file() or not (home / "lib").is_dir():
        raise ServiceError(f"{home} has no bin/taskmanager.sh or lib/; reinstall apache-flink")
    return home


def cluster_dir(state_dir: Path) -> Path:
    return state_dir / "flink" / "cluster"


def cluster_config(settings: Settings, state_dir: Path) -> dict[str, str]:
    """config.yaml of the standalone cluster (flat keys), from the `speed:` settings."""
    s = settings.speed
    # the JobManager and each TaskManager take the next free port of the range for their reporter
    port = s.flink_metrics_port
    reporter = reporter_config(f"{port}-{port + 8}") if port else {}
    return {
        **reporter,
        "jobmanager.rpc.address": s.cluster_host,
        "jobmanager.rpc.port": str(s.cluster_rpc_port),
        "jobmanager.bind-host": s.cluster_host,
        "jobmanager.memory.process.size": s.jobmanager_memory,
        "jobmanager.execution.failover-strategy": "region",
        "taskmanager.bind-host": s.cluster_host,
        "taskmanager.host": s.cluster_host,
        "taskmanager.numberOfTaskSlots": str(s.cluster_slots),
        "taskmanager.memory.process.size": s.taskmanager_memory,
        "rest.address": s.cluster_host,
        "rest.bind-address": s.cluster_host,
        "rest.port": str(s.cluster_rest_port),
        "heartbeat.interval": str(max(500, s.heartbeat_timeout_ms // 5)),
        "heartbeat.timeout": str(s.heartbeat_timeout_ms),
        "io.tmp.dirs": str(cluster_dir(state_dir) / "tmp"),
        "blob.storage.directory": str(cluster_dir(state_dir) / "blobs"),
        "web.tmpdir": str(cluster_dir(state_dir) / "web"),
        "env.java.opts.all": f"{_java_opts()} {s.jvm_opts}".strip(),
    }


def _java_opts() -> str:
    """The --add-opens/--add-exports Flink needs on Java 17, as the package's config states them."""
    import yaml

    raw = yaml.safe_load((flink_home() / "conf" / "config.yaml").read_text()) or {}
    return str(raw.get("env", {}).get("java", {}).get("opts", {}).get("all", ""))


def prepare(settings: Settings, state_dir: Path) -> dict[str, str]:
    """Write the cluster's conf/ and lib/; return the environment of its launch scripts."""
    home, base = flink_home(), cluster_dir(state_dir)
    conf, lib = base / "conf", base / "lib"
    for d in (conf, lib, base / "tmp", base / "blobs", base / "web", state_dir / "logs"):
        d.mkdir(parents=True, exist_ok=True)
    lines = [f"{k}: {json.dumps(v)}" for k, v in cluster_config(settings, state_dir).items()]
    (conf / "config.yaml").write_text("\n".join(lines) + "\n")
    shutil.copy(home / "conf" / "log4j-console.properties", conf / "log4j-console.properties")
    for old in lib.iterdir():
        old.unlink()
    for jar in [*sorted((home / "lib").glob("*.jar")), *sorted((home / "opt").glob("flink-python-*.jar"))]:
        (lib / jar.name).symlink_to(jar)
    env = dict(os.environ)
    env.update(
        {
            "FLINK_HOME": str(home),
            "FLINK_CONF_DIR": str(conf),
            "FLINK_LIB_DIR": str(lib),
            "FLINK_LOG_DIR": str(state_dir / "logs"),
            "FLINK_PID_DIR": str(base / "run"),
        }
    )
    return env


def jobmanager_process(state_dir: Path) -> ManagedProcess:
    return ManagedProcess("flink-jobmanager", state_dir)


def taskmanager_process(state_dir: Path, index: int = 0) -> ManagedProcess:
    return ManagedProcess(f"flink-taskmanager-{index}", state_dir)


def rest_get(host: str, port: int, path: str) -> Any:
    """GET a JSON document from the REST API of a JobManager; None when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=3) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


def taskmanager_ids(host: str, port: int) -> set[str]:
    """Ids of the TaskManagers the JobManager lists (a killed one stays until its heartbeat times out)."""
    listing = rest_get(host, port, "/taskmanagers")
    return {str(tm["id"]) for tm in listing.get("taskmanagers", [])} if listing else set()


def start_taskmanager(settings: Settings, state_dir: Path, index: int = 0, timeout_s: float = 60.0) -> int:
    """Start TaskManager `index` and wait until the JobManager lists it; returns its pid.

    Readiness is a TaskManager id that was not listed before the start, not a count: a dead
    TaskManager may leave the list while the new one joins, and the count would not move."""
    s = settings.speed
    env = prepare(settings, state_dir)
    before = taskmanager_ids(s.cluster_host, s.cluster_rest_port)
    tm = taskmanager_process(state_dir, index)
    pid = tm.start([str(flink_home() / "bin" / "taskmanager.sh"), "start-foreground"], env=env, cwd=state_dir)
    wait_until(
        lambda: bool(taskmanager_ids(s.cluster_host, s.cluster_rest_port) - before),
        timeout_s,
        f"Flink TaskManager {index}",
        tm,
    )
    return pid


def start_cluster(settings: Settings, state_dir: Path, timeout_s: float = 60.0) -> str:
    """Start a JobManager and TaskManager 0 (idempotent); returns the REST address HOST:PORT.

    On a failed start, whatever was started is stopped again.
    """
    s = settings.speed
    jm = jobmanager_process(state_dir)
    if not jm.running():
        for port in (s.cluster_rpc_port, s.cluster_rest_port):
            if port_open(s.cluster_host, port):
                raise ServiceError(f"port {port} is taken by a process lambdastack did not start")
    env = prepare(settings, state_dir)
    try:
        jm.start([str(flink_home() / "bin" / "jobmanager.sh"), "start-foreground"], env=env, cwd=state_dir)
        wait_until(
            lambda: rest_get(s.cluster_host, s.cluster_rest_port, "/overview") is not None,
            timeout_s,
            "the Flink JobManager",
            jm,
        )
        if not taskmanager_process(state_dir, 0).running():
            start_taskmanager(settings, state_dir, 0, timeout_s)
    except BaseException:
        stop_cluster(state_dir)
        raise
    return f"{s.cluster_host}:{s.cluster_rest_port}"


def kill_taskmanager(state_dir: Path, index: int = 0) -> list[int]:
    """SIGKILL a TaskManager's whole process group (the JVM and its Python workers): a crash.

    Returns the pids that were in the group.
    """
    return _kill_group(taskmanager_process(state_dir, index), f"Flink TaskManager {index}")


def kill_jobmanager(state_dir: Path) -> list[int]:
    """SIGKILL the JobManager's process group (a crash; no HA here: its jobs end with it)."""
    return _kill_group(jobmanager_process(state_dir), "the Flink JobManager")


def _kill_group(proc: ManagedProcess, what: str) -> list[int]:
    pid = proc.pid()
    if pid is None:
        raise ServiceError(f"{what} is not running")
    pgid = os.getpgid(pid)
    group = [p for p in psutil.process_iter() if _pgid(p.pid) == pgid]
    os.killpg(pgid, signal.SIGKILL)
    # the Process objects taken before the kill: one made after it can find its process gone
    # (reaped between a pid_exists and the constructor), which wait_procs takes as done
    psutil.wait_procs(group, timeout=10)
    proc.pid_file.unlink(missing_ok=True)
    return [p.pid for p in group]


def _pgid(pid: int) -> int | None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        return os.getpgid(pid)
    return None


def stop_cluster(state_dir: Path, timeout_s: float = 20.0) -> bool:
    """Stop every TaskManager (with their Python workers), then the JobManager."""
    stopped = False
    for pid_file in sorted((state_dir / "run").glob("flink-taskmanager-*.pid")):
        stopped = ManagedProcess(pid_file.stem, state_dir).stop(timeout_s) or stopped
    return jobmanager_process(state_dir).stop(timeout_s) or stopped
