"""Start, stop and report the local stack: infrastructure plus the speed job and the API."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from lambdastack.errors import ServiceError
from lambdastack.keys import KeyLayout
from lambdastack.settings import Settings
from lambdastack.speed_health import REDIS_AWAY, SpeedHealth, judge
from tools.stack import kafka, prometheus, redis
from tools.stack.process import ManagedProcess, port_open, wait_until
from tools.stack.supervisor import Supervisor, restarts

# set in the environment of every process the stack starts, so `down` finds orphans after a crash
MEMBER_ENV = "LSTACK_MEMBER_OF"
APPS = ("api", "speed")
SUPERVISOR = "supervisor"  # what `up` leaves running beside the stack (tools.stack.supervisor)
SPEED_READY = "running; loading signals into Redis"  # what `lambdastack speed run` prints when ready
INFRA = ("kafka", "redis")
MONITORING = "prometheus"  # what `up` starts after the API, scraping it and the speed job


@dataclass(frozen=True)
class Status:
    name: str
    pid: int | None
    address: str
    log: str
    restarts: int | None = None  # by the supervisor; None when no supervisor ever watched it

    @property
    def running(self) -> bool:
        return self.pid is not None


def _member_env(settings: Settings) -> dict[str, str]:
    return {**os.environ, MEMBER_ENV: str(settings.state_dir)}


def _addresses(settings: Settings) -> dict[str, tuple[str, int]]:
    return {
        "kafka": (settings.kafka.host, settings.kafka.port),
        "redis": (settings.redis.host, settings.redis.port),
        "api": (settings.serving.host, settings.serving.port),
        "speed": ("", 0),
        MONITORING: (settings.prometheus.host, settings.prometheus.port),
    }


def up_infra(settings: Settings, echo: Callable[[str], None] = print) -> None:
    """Start Kafka and Redis (idempotent)."""
    os.environ[MEMBER_ENV] = str(settings.state_dir)
    for name, starter in (("kafka", kafka.start), ("redis", redis.start)):
        host, port = _addresses(settings)[name]
        echo(f"starting {name} on {host}:{port} ...")
        pid = starter(settings)
        echo(f"  {name} ready (pid {pid})")


def start_app(settings: Settings, name: str, argv: list[str]) -> int:
    """Start the speed job or the API in the background."""
    proc = ManagedProcess(name, settings.state_dir)
    if (running := proc.pid()) is not None:
        return running
    offset = proc.log_file.stat().st_size if proc.log_file.exists() else 0
    pid = proc.start([sys.executable, "-m", "tools", *argv], env=_member_env(settings))
    if name == "api":
        host, port = _addresses(settings)["api"]
        wait_until(lambda: port_open(host, port), settings.stack.ready_timeout_s, "the API", proc)
    elif name == "speed":
        wait_until(
            lambda: SPEED_READY in proc.log_since(offset),
            settings.stack.ready_timeout_s * 2,
            "the speed job",
            proc,
        )
    return pid


def _orphans(settings: Settings) -> list[psutil.Process]:
    """Processes of this stack by their environment marker, or by a working directory in the state
    directory (redis-server overwrites its environment block with its process title)."""
    marker = str(settings.state_dir)
    found = []
    for p in psutil.process_iter(["pid"]):
        if p.pid == os.getpid():
            continue
        try:
            if p.environ().get(MEMBER_ENV) == marker or p.cwd().startswith(marker + os.sep):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def supervisor_record(settings: Settings) -> Path:
    return settings.state_dir / "run" / "supervisor.json"


def start_supervisor(settings: Settings) -> int:
    """Start the supervisor of the stack (`lambdastack stack supervise`) in the background."""
    proc = ManagedProcess(SUPERVISOR, settings.state_dir)
    return proc.start([sys.executable, "-m", "tools", "stack", "supervise"], env=_member_env(settings))


def supervise(settings: Settings, stop: threading.Event) -> None:
    """Watch and restart the stack's members until `stop` (tools.stack.supervisor)."""
    members = ("kafka", "redis", "speed", "api", MONITORING)
    starters: dict[str, Callable[[], object]] = {
        "kafka": lambda: kafka.start(settings),
        "redis": lambda: redis.start(settings),
        "speed": lambda: start_app(settings, "speed", ["speed", "run"]),
        "api": lambda: start_app(settings, "api", ["serve"]),
        MONITORING: lambda: prometheus.start(settings),
    }
    alive = {name: ManagedProcess(name, settings.state_dir).running for name in members}
    os.environ[MEMBER_ENV] = str(settings.state_dir)
    Supervisor(alive, starters, supervisor_record(settings), echo=lambda m: print(m, flush=True)).run(stop)


def down(settings: Settings, echo: Callable[[str], None] = print) -> None:
    """Stop everything the stack started, including orphans of a crashed run; free the ports. The
    supervisor first, so nothing stopped here is started again."""
    for name in (SUPERVISOR, MONITORING, *APPS, *INFRA):
        if ManagedProcess(name, settings.state_dir).stop():
            echo(f"stopped {name}")
    leftovers = _orphans(settings)
    for p in leftovers:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            echo(f"stopping orphan {p.pid} ({' '.join(p.cmdline()[:3])})")  # it may exit meanwhile
            p.terminate()
    _, alive = psutil.wait_procs(leftovers, timeout=15)
    for p in alive:
        p.kill()
    busy = [f"{n} {h}:{p}" for n, (h, p) in _addresses(settings).items() if p and port_open(h, p)]
    if busy:
        raise ServiceError(f"ports still in use after stopping the stack: {', '.join(busy)}")


def speed_health(settings: Settings) -> SpeedHealth:
    """The speed layer's health as its loader's heartbeat in Redis shows it (lambdastack.speed_health)."""
    import time

    import redis as redis_client

    r = settings.redis
    try:
        client = redis_client.Redis(host=r.host, port=r.port, db=r.db, socket_timeout=2)
        beat: Any = client.hgetall(KeyLayout(r.key_prefix).speed_loader())
    except (redis_client.RedisError, OSError):
        return REDIS_AWAY
    s = settings.speed
    return judge(beat, int(time.time() * 1000), s.stale_after_s, s.max_lag_records)


def status(settings: Settings) -> list[Status]:
    counts = restarts(supervisor_record(settings))
    out = []
    for name, (host, port) in _addresses(settings).items():
        proc = ManagedProcess(name, settings.state_dir)
        address = f"{host}:{port}" if port else "-"
        out.append(Status(name, proc.pid(), address, str(proc.log_file), counts.get(name)))
    proc = ManagedProcess(SUPERVISOR, settings.state_dir)
    out.append(Status(SUPERVISOR, proc.pid(), "-", str(proc.log_file)))
    return out
