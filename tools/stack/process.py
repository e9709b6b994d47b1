"""Background processes with a pid file and a log under the state directory."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from lambdastack.errors import ServiceError


@dataclass(frozen=True)
class ManagedProcess:
    """One named background process: `{state}/run/{name}.pid` and `{state}/logs/{name}.log`."""

    name: str
    state_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "run" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid if the recorded process is still alive (a stale pid file counts as none)."""
        try:
            fields = self.pid_file.read_text().split()
            pid, created = int(fields[0]), float(fields[1])
        except (FileNotFoundError, ValueError, IndexError):
            return None
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            if abs(proc.create_time() - created) > 1.0:
                return None  # the pid was reused by an unrelated process
        except psutil.NoSuchProcess:
            return None
        return pid

    def running(self) -> bool:
        return self.pid() is not None

    def start(self, argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
        """Start detached (own session) unless already running; returns the pid."""
        if (pid := self.pid()) is not None:
            return pid
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        created = psutil.Process(proc.pid).create_time()
        self.pid_file.write_text(f"{proc.pid} {created}\n")
        return proc.pid

    def stop(self, timeout_s: float = 20.0) -> bool:
        """SIGTERM the process group, then SIGKILL; remove the pid file. True if one was running."""
        pid = self.pid()
        was_running = pid is not None
        if pid is not None:
            _terminate_tree(pid, timeout_s)
        self.pid_file.unlink(missing_ok=True)
        return was_running

    def log_since(self, offset: int) -> str:
        """The log written after byte `offset`."""
        try:
            with open(self.log_file, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def _terminate_tree(pid: int, timeout_s: float) -> None:
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(os.getpgid(pid), signal.SIGTERM)
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    _, alive = psutil.wait_procs(procs, timeout=timeout_s)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=5)


def wait_until(
    check: Callable[[], bool], timeout_s: float, what: str, log: ManagedProcess | None = None
) -> None:
    """Poll `check` until true; raise ServiceError naming `what` (with the log tail) on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        if log is not None and not log.running():
            raise ServiceError(
                f"{what} exited during start-up. Last lines of {log.log_file}:\n{log.log_tail()}"
            )
        time.sleep(0.25)
    tail = f" Last lines of {log.log_file}:\n{log.log_tail()}" if log else ""
    raise ServiceError(f"{what} was not ready within {timeout_s:.0f} s.{tail}")


def port_open(host: str, port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0
