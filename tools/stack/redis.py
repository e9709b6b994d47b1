"""Debian's redis-server bound to loopback, installed with apt-get if missing."""

from __future__ import annotations

import subprocess

from lambdastack.errors import ServiceError
from lambdastack.settings import Settings
from tools.stack.debian import ensure_binary
from tools.stack.process import ManagedProcess, port_open, wait_until


def process(settings: Settings) -> ManagedProcess:
    return ManagedProcess("redis", settings.state_dir)


def server_binary() -> str:
    """Path of redis-server, installing Debian's package when it is missing."""
    found, installed = ensure_binary("redis-server", "redis-server")
    if installed:  # Debian starts a system instance on 6379 after install; the stack runs its own
        subprocess.run(["service", "redis-server", "stop"], capture_output=True)
    return found


def ready(settings: Settings) -> bool:
    import redis

    try:
        return bool(redis.Redis(host=settings.redis.host, port=settings.redis.port, socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def start(settings: Settings) -> int:
    proc = process(settings)
    if proc.running():
        wait_until(lambda: ready(settings), settings.stack.ready_timeout_s, "Redis", proc)
        return proc.pid() or 0
    if port_open(settings.redis.host, settings.redis.port):
        raise ServiceError(
            f"port {settings.redis.port} is taken by a process lambdastack did not start; "
            "stop it or set redis.port in conf/lambdastack.yaml"
        )
    home = settings.state_dir / "redis"
    home.mkdir(parents=True, exist_ok=True)
    pid = proc.start(
        [
            server_binary(),
            "--bind",
            settings.redis.host,
            "--port",
            str(settings.redis.port),
            "--dir",
            str(home),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
            "--daemonize",
            "no",
        ],
        cwd=home,
    )
    wait_until(lambda: ready(settings), settings.stack.ready_timeout_s, "Redis", proc)
    return pid
