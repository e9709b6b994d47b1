"""Helpers of the integration tests: waiting, consuming a topic, running CLI subprocesses."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from lambdastack.settings import Settings
from tools.stack.process import ManagedProcess

T = TypeVar("T")


class OwnRedis:
    """A redis-server of one test module on its own port (DEBUG allowed, so it can be made slow)."""

    def __init__(self, home: Path, port: int):
        self.home, self.port = home, port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        from tools.bench.api_stack import private_redis_argv
        from tools.stack.process import port_open

        self.home.mkdir(parents=True, exist_ok=True)
        argv = private_redis_argv("redis-server", self.port, self.home, "--enable-debug-command", "local")
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        eventually(lambda: port_open("127.0.0.1", self.port), 20, "the test Redis start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def kill(self) -> None:
        """SIGKILL: what it held is gone (no persistence), its clients see refused connections."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def client(self) -> Any:
        import redis

        return redis.Redis(port=self.port, socket_timeout=5)


def eventually(check: Callable[[], T], timeout_s: float, what: str, interval_s: float = 0.25) -> T:
    """Poll until `check` returns a truthy value; fail naming `what` and the last value."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"{what} did not happen within {timeout_s} s (last: {str(last)[:2000]})")


def consume_all(
    settings: Settings, topic: str, expect: int, timeout_s: float = 30, since: dict[int, int] | None = None
) -> list[Any]:
    """Read `expect` records of a topic from the start, or from the offsets `since` (partition ->
    offset, `end_offsets` before a test sent anything: a topic other tests wrote to first)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        if since is None:
            consumer.subscribe([topic])
        else:
            parts = [TopicPartition(topic, p) for p in sorted(since)]
            consumer.assign(parts)
            for tp in parts:
                consumer.seek(tp, since[tp.partition])
        while len(out) < expect and time.monotonic() < deadline:
            out += list(consumer)
    finally:
        consumer.close()
    return out


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """partition -> the offset the next record of the topic will get."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.kafka.bootstrap, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        assert parts, f"the topic {topic} has no partitions"
        return {tp.partition: off for tp, off in consumer.end_offsets(parts).items()}
    finally:
        consumer.close()


def invalid_at(records: list[Any]) -> list[tuple[int, int]]:
    """(partition, offset) of each consumed events-topic record the event contract refuses."""
    from lambdastack.events import decode

    now = int(time.time() * 1000)
    return [(m.partition, m.offset) for m in records if decode(m.value or b"", now_ms=now)[0] is None]


def start_cli(name: str, args: list[str], env: dict[str, str], logs: Path) -> ManagedProcess:
    """Run `lambdastack ARGS` in the background with its own log."""
    proc = ManagedProcess(name, logs)
    proc.start([sys.executable, "-m", "tools", *args], env=env)
    return proc


def run_cli(args: list[str], env: dict[str, str], timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def load_synthetic(settings: Settings, *, duplicates: int = 0, **world: Any) -> Any:
    """Write a synthetic world (tools.datasets.synthetic.generate(**world)) into the test's
    master dataset and catalogue; `duplicates` first events are loaded twice. Returns the events."""
    from lambdastack.master import append, write_catalogue
    from tools.datasets.synthetic import generate

    events, items = generate(**world)
    append(events, settings.path(settings.data.master_dir))
    if duplicates:
        append(events.slice(0, duplicates), settings.path(settings.data.master_dir))
    write_catalogue(items, settings.path(settings.data.catalogue_dir))
    return events


def jloads(raw: bytes) -> Any:
    return json.loads(raw)


def free_ports(n: int) -> list[int]:
    """n distinct loopback ports free at this moment (bound together, then released)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def seen_set(r: Any, seen_key: str) -> dict[str, int]:
    """A user's seen set in Redis: item -> the event time (epoch ms) it holds."""
    return {m.decode(): int(ms) for m, ms in r.zrange(seen_key, 0, -1, withscores=True)}
