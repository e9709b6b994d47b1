"""`lambdastack speed stop`: find the `speed run` of these settings and stop it, with a savepoint.

A running `speed run` records `{state}/flink/run-{consumer_group}.json` (its pid and job id).
`speed stop` signals that process only (SIGTERM, or SIGUSR1 for a savepoint), never its process
group: the job's JVM must stay up to take the savepoint. The path of the newest savepoint is kept
in `{savepoint_dir}/latest-{consumer_group}` for `speed run --from-savepoint latest`, and the id of
the newest job in `{state}/flink/job-{consumer_group}` (kept when the process ends, however it
ends) for `speed run --from-savepoint checkpoint`: that job's newest completed checkpoint, the
way back after its JobManager died.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil

from lambdastack.errors import ConfigError, ServiceError
from lambdastack.settings import Settings
from speed.options import checkpoint_dir, savepoint_dir


def run_file(settings: Settings) -> Path:
    return settings.state_dir / "flink" / f"run-{settings.speed.consumer_group}.json"


def job_file(settings: Settings) -> Path:
    return settings.state_dir / "flink" / f"job-{settings.speed.consumer_group}"


def latest_file(settings: Settings) -> Path:
    return savepoint_dir(settings) / f"latest-{settings.speed.consumer_group}"


def record_run(settings: Settings, pid: int, job_id: str) -> None:
    path = run_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    created = psutil.Process(pid).create_time()
    path.write_text(json.dumps({"pid": pid, "created": created, "job_id": job_id}))
    job_file(settings).write_text(job_id + "\n")


def forget_run(settings: Settings, pid: int) -> None:
    path = run_file(settings)
    try:
        if json.loads(path.read_text())["pid"] == pid:
            path.unlink()
    except (FileNotFoundError, ValueError, KeyError):
        pass


def record_savepoint(settings: Settings, path: str) -> None:
    latest = latest_file(settings)
    latest.parent.mkdir(parents=True, exist_ok=True)
    tmp = latest.with_suffix(".tmp")
    tmp.write_text(path + "\n")
    os.replace(tmp, latest)


def resolve_savepoint(settings: Settings, value: str | None) -> str | None:
    """`--from-savepoint`: a path or URI as given, `latest` (the newest recorded savepoint) or
    `checkpoint` (the newest completed checkpoint of the newest job)."""
    if value == "checkpoint":
        return str(latest_checkpoint(settings))
    if value != "latest":
        return value
    try:
        return latest_file(settings).read_text().strip()
    except FileNotFoundError:
        raise ConfigError(
            f"--from-savepoint latest: no savepoint recorded in {latest_file(settings)}"
        ) from None


def latest_checkpoint(settings: Settings) -> Path:
    """The newest completed checkpoint (a `chk-N` holding `_metadata`) of the job `speed run` of
    these settings started last."""
    try:
        job_id = job_file(settings).read_text().strip()
    except FileNotFoundError:
        raise ConfigError(f"--from-savepoint checkpoint: no job recorded in {job_file(settings)}") from None
    done = [d for d in (checkpoint_dir(settings) / job_id).glob("chk-*") if (d / "_metadata").exists()]
    if not done:
        raise ConfigError(
            f"--from-savepoint checkpoint: job {job_id} has no completed checkpoint "
            f"in {checkpoint_dir(settings)}"
        )
    return max(done, key=lambda d: int(d.name.removeprefix("chk-")))


def current_run(settings: Settings) -> tuple[int, str] | None:
    """(pid, Flink job id) of the `speed run` of these settings that is alive, else None."""
    try:
        info = json.loads(run_file(settings).read_text())
        proc = psutil.Process(int(info["pid"]))
        if abs(proc.create_time() - float(info["created"])) > 1.0 or proc.status() == psutil.STATUS_ZOMBIE:
            return None
    except (FileNotFoundError, ValueError, KeyError, psutil.NoSuchProcess):
        return None
    return proc.pid, str(info.get("job_id", ""))


def _running_pid(settings: Settings) -> int:
    run = current_run(settings)
    if run is None:
        raise ServiceError(f"no `speed run` of consumer group {settings.speed.consumer_group} is running")
    return run[0]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def stop_run(settings: Settings, savepoint: bool, timeout_s: float = 120.0) -> str | None:
    """Signal the running `speed run` and wait for it to exit; the savepoint path if one was taken."""
    pid = _running_pid(settings)
    latest = latest_file(settings)
    before = latest.stat().st_mtime if latest.exists() else 0.0
    os.kill(pid, signal.SIGUSR1 if savepoint else signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _alive(pid):  # not psutil's wait(): a zombie its parent has not reaped yet has exited
        if time.monotonic() > deadline:
            raise ServiceError(f"`speed run` (pid {pid}) did not stop within {timeout_s:.0f} s")
        time.sleep(0.2)
    if latest.exists() and latest.stat().st_mtime > before:
        return latest.read_text().strip()
    return None
