"""The steady load and the memory samples of `lambdastack bench soak` (tools/bench/soak.py): events
at a fixed rate into Kafka with the counts they must produce, feed requests at a fixed rate with
their status codes and latencies, and every process's resident memory every few seconds."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil

from lambdastack.errors import ServiceError
from lambdastack.events import format_time
from lambdastack.keys import bucket_start
from lambdastack.settings import Settings

EVENT_TYPES = ("view", "click", "like", "watch", "view", "share")


def _paced(rate: float, stop: threading.Event, start: float, n: int) -> None:
    """Wait until the n-th action of a `rate` per second schedule begun at `start` is due."""
    delay = start + n / rate - time.monotonic()
    if delay > 0:
        stop.wait(delay)


@dataclass
class EventLoad:
    """Events sent at `rate` per second over the version's users and items, each id once, and
    the bucket counts they must leave in Redis: (bucket start, item) -> events."""

    settings: Settings
    users: Sequence[str]
    items: Sequence[str]
    rate: float
    run_id: str
    expected: Counter[tuple[int, str]] = field(default_factory=Counter)
    event_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def run(self, stop: threading.Event) -> None:
        from confluent_kafka import Producer

        producer = Producer(
            {"bootstrap.servers": self.settings.kafka.bootstrap, "enable.idempotence": True, "linger.ms": 5}
        )
        topic, start, n, bucket_s = (
            self.settings.topics.events,
            time.monotonic(),
            0,
            self.settings.batch.bucket_s,
        )

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                self.errors.append(str(err))

        while not stop.is_set():
            _paced(self.rate, stop, start, n)
            now_ms = int(time.time() * 1000)
            user, item = self.users[(n * 31) % len(self.users)], self.items[(n * 7919) % len(self.items)]
            event = {
                "event_id": f"soak-{self.run_id}-{n}",
                "user_id": user,
                "item_id": item,
                "type": EVENT_TYPES[n % len(EVENT_TYPES)],
                "value": 1.0,
                "event_time": format_time(now_ms),
                "schema_version": 1,
            }
            try:
                producer.produce(topic, json.dumps(event).encode(), user.encode(), on_delivery=delivered)
            except BufferError:
                producer.poll(0.01)
                continue
            self.expected[(bucket_start(now_ms, bucket_s), item)] += 1
            self.event_ids.append(str(event["event_id"]))
            n += 1
            producer.poll(0)
        if producer.flush(60):
            self.errors.append("events still undelivered 60 s after the load stopped")


@dataclass
class FeedLoad:
    """Feed requests at `rate` per second over `paths`, on one kept-alive connection per thread:
    how many got each status code, their latencies, and the connection errors."""

    host: str
    port: int
    paths: Sequence[str]
    rate: float
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, stop: threading.Event, offset: int, threads: int) -> None:
        """One of `threads` clients, each sending every `threads`-th request of the schedule."""
        conn, start, n = http.client.HTTPConnection(self.host, self.port, timeout=10), time.monotonic(), 0
        while not stop.is_set():
            _paced(self.rate / threads, stop, start, n)
            path = self.paths[(n * threads + offset) % len(self.paths)]
            t0 = time.perf_counter()
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
                with self._lock:
                    self.errors.append(f"{path}: {e!r}")
                n += 1
                continue
            with self._lock:
                self.statuses[status] += 1
                self.latencies_ms.append((time.perf_counter() - t0) * 1000)
            n += 1
        conn.close()

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


def _role(proc: psutil.Process, root_role: str, root_pid: int) -> str:
    """What a process of a tree is: the root's role, the Flink JVM, or a Python worker."""
    if proc.pid == root_pid:
        return root_role
    name = proc.name()
    return f"{root_role}.jvm" if name == "java" else f"{root_role}.{name}"


@dataclass
class RssSampler:
    """Each process's resident set size (MB) every `every_s`, per process of the trees of
    `roots` (role -> pid): samples of (seconds since the start, MB) by pid, with its role."""

    roots: dict[str, int]
    every_s: float
    probe: Callable[[], dict[str, Any]] | None = None  # more figures per sample (Redis's dataset)
    samples: dict[int, list[tuple[float, float]]] = field(default_factory=dict)
    roles: dict[int, str] = field(default_factory=dict)
    vanished: list[str] = field(default_factory=list)
    probed: list[dict[str, Any]] = field(default_factory=list)

    def sample(self, t_s: float) -> None:
        if self.probe is not None:
            self.probed.append({"t": round(t_s, 1), **self.probe()})
        for role, pid in self.roots.items():
            try:
                root = psutil.Process(pid)
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                self.vanished.append(f"{role} (pid {pid}) at {t_s:.0f} s")
                continue
            for proc in tree:
                try:
                    rss = proc.memory_info().rss / 2**20
                    self.roles.setdefault(proc.pid, _role(proc, role, pid))
                except psutil.NoSuchProcess:
                    continue
                self.samples.setdefault(proc.pid, []).append((round(t_s, 1), round(rss, 1)))

    def run(self, stop: threading.Event, start: float) -> None:
        while True:
            self.sample(time.monotonic() - start)
            if stop.wait(self.every_s):
                return


def growth(samples: list[tuple[float, float]], warmup_s: float) -> dict[str, Any]:
    """A process's memory after the warm-up: its RSS at the first sample from `warmup_s` on, the
    highest after it, and the growth between the two (None without samples after the warm-up)."""
    after = [mb for t, mb in samples if t >= warmup_s]
    if not after:
        return {"rss_at_warmup_mb": None, "rss_max_after_mb": None, "growth": None}
    return {
        "rss_at_warmup_mb": after[0],
        "rss_max_after_mb": max(after),
        "growth": round(max(after) / after[0] - 1.0, 4) if after[0] > 0 else None,
    }


def counts_diff(got: dict[tuple[int, str], int], expected: Counter[tuple[int, str]]) -> dict[str, Any]:
    """Where Redis's bucket counts differ from the events sent: how many (bucket, item) cells, and
    a few of them as (got, expected)."""
    wrong = {k: (got.get(k, 0), v) for k, v in expected.items() if got.get(k, 0) != v}
    wrong.update({k: (v, 0) for k, v in got.items() if k not in expected})
    return {"cells": len(wrong), "examples": {f"{b}/{i}": gv for (b, i), gv in list(wrong.items())[:5]}}


def require_delivered(load: EventLoad) -> None:
    if load.errors:
        raise ServiceError(f"the soak's producer lost {len(load.errors)} events: {load.errors[0]}")
