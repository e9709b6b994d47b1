"""`lambdastack bench speed`: the real speed path under load, measured from the outside.

The bench starts `lambdastack speed run` on a topic set and key prefix of its own, then per rate:
a producer (confluent-kafka, pre-serialized events; kafka-python tops out near 5,000 records/s
per process on this machine) sends `rate` events/s for `seconds`, plus a probe event for a fresh
marker item every 50 ms. A poller reads Redis every 5 ms: a probe's freshness is the time from
its send to its count being readable. Throughput is what the job counted (the bucket ZSETs in
Redis) over the time it took; the backlog (events sent minus counted) is sampled every second.
CPU is the process tree of `speed run` (the JVM and its Python workers), the bench itself
(producer and poller) and Kafka + Redis, from psutil.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

from lambdastack.errors import ServiceError
from lambdastack.events import format_time
from lambdastack.keys import KeyLayout, bucket_start
from lambdastack.settings import Settings, load_settings
from tools.stack.process import ManagedProcess, wait_until

PROBE_EVERY_S = 0.05
POLL_EVERY_S = 0.005
POLL_OLDEST = 20  # probes read per poll: a backlog must not turn the poller into a CPU hog
INVALID_EVERY = 1000  # one invalid record per this many: the dead-letter path is exercised


def bench_env(tag: str) -> dict[str, str]:
    """Environment overrides that isolate the bench's job (topics, prefix, groups, no archive)."""
    return {
        "LAMBDASTACK_TOPICS__EVENTS": f"bench-{tag}.events",
        "LAMBDASTACK_TOPICS__DEAD_LETTER": f"bench-{tag}.dlq",
        "LAMBDASTACK_TOPICS__SIGNALS": f"bench-{tag}.signals",
        "LAMBDASTACK_TOPICS__USERS": f"bench-{tag}.users",
        "LAMBDASTACK_REDIS__KEY_PREFIX": f"bench{tag}",
        "LAMBDASTACK_SPEED__CONSUMER_GROUP": f"bench-{tag}-speed",
        "LAMBDASTACK_SPEED__LOADER_GROUP": f"bench-{tag}-loader",
        "LAMBDASTACK_SPEED__USERS_GROUP": f"bench-{tag}-users",
        "LAMBDASTACK_SPEED__ARCHIVE_ENABLED": "false",
        "LAMBDASTACK_SPEED__METRICS_PORT": "0",
        "LAMBDASTACK_SPEED__SAVEPOINT_ON_STOP": "false",
    }


def percentiles(values_ms: list[float]) -> dict[str, float | None]:
    """p50/p95/p99/max in ms (nearest rank), None when there are no values."""
    if not values_ms:
        return {"p50": None, "p95": None, "p99": None, "max": None, "n": 0}
    v = sorted(values_ms)

    def rank(q: float) -> float:
        return round(v[min(len(v) - 1, max(0, int(q * len(v) + 0.999999) - 1))], 1)

    return {"p50": rank(0.5), "p95": rank(0.95), "p99": rank(0.99), "max": round(v[-1], 1), "n": len(v)}


def payloads(n: int, items: int, users: int, time_ms: int, run_id: str = "") -> list[bytes]:
    """`n` wire events (every INVALID_EVERY-th one invalid) spread over items and users, their ids
    unique to the run (the speed job counts an event id once: a run reusing the warm-up's ids
    would be dropped as copies)."""
    types = ("view", "click", "like", "watch")
    stamp = format_time(time_ms)
    out = []
    for i in range(n):
        if i % INVALID_EVERY == INVALID_EVERY - 1:
            out.append(b'{"event_id": "bench-invalid"}')
            continue
        event = {
            "event_id": f"b{run_id}-{i}",
            "user_id": f"u{i % users}",
            "item_id": f"i{(i * 7919) % items}",
            "type": types[i % len(types)],
            "value": 1.0,
            "event_time": stamp,
            "schema_version": 1,
        }
        out.append(json.dumps(event, separators=(",", ":")).encode())
    return out


def tree_cpu(pids: list[int], children: bool = True) -> float:
    """CPU seconds (user + system) of processes and (unless told not to) all their children."""
    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for p in [root, *(root.children(recursive=True) if children else [])]:
                t = p.cpu_times()
                total += t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return total


class _Probes:
    """Marker events sent by the producer thread and watched in Redis by the poller thread."""

    def __init__(self, settings: Settings, run_id: str):
        import redis

        r = settings.redis
        self._redis = redis.Redis(host=r.host, port=r.port, db=r.db)
        self._layout = KeyLayout(settings.redis.key_prefix)
        self._bucket_s = settings.batch.bucket_s
        self._run_id = run_id
        self._pending: dict[str, tuple[str, str, float]] = {}
        self._lock = threading.Lock()
        self.latencies_ms: list[float] = []
        self.sent = 0

    def make(self) -> tuple[bytes, str]:
        now_ms = int(time.time() * 1000)
        item = f"probe-{self._run_id}-{self.sent}"
        event = {
            "event_id": f"p-{item}",
            "user_id": "probe",
            "item_id": item,
            "type": "view",
            "value": 1.0,
            "event_time": format_time(now_ms),
            "schema_version": 1,
        }
        field = KeyLayout.item_field(bucket_start(now_ms, self._bucket_s), "*")
        self.sent += 1
        return json.dumps(event, separators=(",", ":")).encode(), f"{item}\t{field}"

    def sent_at(self, token: str, t: float) -> None:
        item, field = token.split("\t")
        with self._lock:
            self._pending[item] = (self._layout.item(item), field, t)

    def poll(self) -> None:
        with self._lock:  # the oldest few: probes are counted in send order (one key, one partition)
            pending = list(self._pending.items())[:POLL_OLDEST]
        if not pending:
            return
        pipe = self._redis.pipeline(transaction=False)
        for _, (key, field, _) in pending:
            pipe.hget(key, field)
        values = pipe.execute()
        seen = time.time()  # after the reply: a conservative reading
        for (item, (_, _, sent)), value in zip(pending, values, strict=True):
            if value is not None:
                self.latencies_ms.append((seen - sent) * 1000)
                with self._lock:
                    self._pending.pop(item, None)

    def outstanding(self) -> int:
        with self._lock:
            return len(self._pending)


def _counted(settings: Settings, buckets: set[int]) -> int:
    """Events the job counted so far: the sum of the bucket ZSETs (probes included)."""
    import redis

    r = redis.Redis(host=settings.redis.host, port=settings.redis.port, db=settings.redis.db)
    layout = KeyLayout(settings.redis.key_prefix)
    rows: list[tuple[bytes, float]] = []
    for b in buckets:
        rows += r.zrange(layout.bucket(b), 0, -1, withscores=True)  # type: ignore[arg-type]
    return int(sum(score for _, score in rows))


def _dead_letters(settings: Settings) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.kafka.bootstrap)
    try:
        parts = consumer.partitions_for_topic(settings.topics.dead_letter) or set()
        tps = [TopicPartition(settings.topics.dead_letter, p) for p in parts]
        return int(sum(consumer.end_offsets(tps).values())) if tps else 0
    finally:
        consumer.close()


def _produce(settings: Settings, batch: list[bytes], rate: float, probes: _Probes) -> float:
    """Send `batch` at `rate` per second with probes; the seconds until the last one was acknowledged."""
    from confluent_kafka import Producer

    producer = Producer(
        {"bootstrap.servers": settings.kafka.bootstrap, "enable.idempotence": True, "linger.ms": 5}
    )
    topic, start, sent, next_probe = settings.topics.events, time.time(), 0, time.time()

    errors: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    def send(value: bytes, key: bytes) -> None:
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=delivered)
                return
            except BufferError:
                producer.poll(0.005)

    while sent < len(batch):  # ends about `seconds` after the start
        due = min(len(batch), int((time.time() - start) * rate))
        while sent < due:
            send(batch[sent], b"u%d" % (sent % 97))
            sent += 1
        if time.time() >= next_probe:
            value, token = probes.make()
            send(value, b"probe")
            probes.sent_at(token, time.time())
            next_probe += PROBE_EVERY_S
        producer.poll(0)
        time.sleep(0.002)
    if producer.flush(60):
        raise ServiceError("the bench producer could not deliver every event within 60 s")
    if errors:
        raise ServiceError(f"the bench producer lost {len(errors)} events: {errors[0]}")
    return time.time() - start


def _cpu_seconds(job_pid: int, infra: list[int]) -> dict[str, float]:
    """CPU seconds so far of the speed job's process tree, this process, and Kafka + Redis."""
    return {
        "speed_job": tree_cpu([job_pid]),
        "bench": tree_cpu([os.getpid()], children=False),
        "kafka_redis": tree_cpu(infra),
    }


def _wait_counted(settings: Settings, buckets: set[int], base: int, expected: int, timeout_s: float) -> int:
    """Events counted since `base`, once `expected` are or after `timeout_s`."""
    deadline, counted = time.time() + timeout_s, 0
    while time.time() < deadline and (counted := _counted(settings, buckets) - base) < expected:
        time.sleep(0.05)
    return counted


def _one_run(settings: Settings, job_pid: int, rate: float, seconds: float, run_id: str) -> dict[str, Any]:
    """Send `rate` events/s for `seconds` with freshness probes, wait until the speed view has
    counted them all, and report throughput, freshness, backlog, dead letters and CPU."""
    from tools.stack import kafka, redis

    start_ms = int(time.time() * 1000)
    buckets = {bucket_start(start_ms, settings.batch.bucket_s)}
    buckets.add(bucket_start(start_ms + int(seconds * 1000) + 600_000, settings.batch.bucket_s))
    batch = payloads(int(rate * seconds), 1000, 5000, start_ms, run_id)
    valid = sum(1 for p in batch if b"bench-invalid" not in p)
    base, dead_before = _counted(settings, buckets), _dead_letters(settings)
    probes = _Probes(settings, run_id)
    infra = [pid for pid in (kafka.process(settings).pid(), redis.process(settings).pid()) if pid]
    cpu0 = _cpu_seconds(job_pid, infra)
    t0, done, backlog = time.time(), threading.Event(), []

    def poller() -> None:
        while not done.is_set() or (probes.outstanding() and time.time() - t0 < seconds + 120):
            probes.poll()
            time.sleep(POLL_EVERY_S)

    def sampler() -> None:
        while not done.wait(1.0):
            sent = min(len(batch), int((time.time() - t0) * rate))
            backlog.append(max(0, sent - (_counted(settings, buckets) - base)))

    threads = [threading.Thread(target=poller), threading.Thread(target=sampler, daemon=True)]
    for t in threads:
        t.start()
    produce_s = _produce(settings, batch, rate, probes)
    expected = valid + probes.sent
    counted = _wait_counted(settings, buckets, base, expected, timeout_s=120)
    wall = time.time() - t0
    done.set()
    threads[0].join()
    cpu1 = _cpu_seconds(job_pid, infra)
    return {
        "rate": rate,
        "seconds": seconds,
        "sent": len(batch) + probes.sent,
        "produced_eps": round((len(batch) + probes.sent) / produce_s, 1),
        "counted": counted,
        "expected_counted": expected,
        "complete": counted >= expected,
        "throughput_eps": round(counted / wall, 1),
        "catch_up_s": round(wall - produce_s, 2),
        "freshness_ms": percentiles(probes.latencies_ms),
        "freshness_samples_ms": [round(x, 1) for x in probes.latencies_ms],
        "probes_lost": probes.outstanding(),
        "backlog_events": {
            "max": max(backlog, default=0),
            "mean": round(statistics.fmean(backlog or [0]), 1),
        },
        "dead_letters": _dead_letters(settings) - dead_before,
        "invalid_sent": len(batch) - valid,
        "cpu_cores": {k: round((cpu1[k] - cpu0[k]) / wall, 2) for k in cpu0},
    }


def _summary(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians per rate over the repeated runs."""
    out = []
    for rate in sorted({r["rate"] for r in runs}):
        rs = [r for r in runs if r["rate"] == rate]

        def med(get: Any, rs: list[dict[str, Any]] = rs) -> Any:
            values = [v for v in (get(r) for r in rs) if v is not None]
            return round(statistics.median(values), 1) if values else None

        out.append(
            {
                "rate": rate,
                "runs": len(rs),
                "throughput_eps": med(lambda r: r["throughput_eps"]),
                "freshness_ms": {q: med(lambda r, q=q: r["freshness_ms"][q]) for q in ("p50", "p95", "p99")},
                "backlog_max": med(lambda r: r["backlog_events"]["max"]),
                "speed_job_cpu_cores": med(lambda r: r["cpu_cores"]["speed_job"]),
                "all_complete": all(r["complete"] for r in rs),
            }
        )
    return out


def start_job(settings: Settings, env: dict[str, str], logs: Path) -> ManagedProcess:
    proc = ManagedProcess("bench-speed-job", logs)
    proc.start([sys.executable, "-m", "tools", "speed", "run"], env=env)
    try:
        ready = "running; loading signals"
        wait_until(lambda: ready in proc.log_tail(30), 600, "the bench's speed job", proc)
    except BaseException:
        proc.stop(timeout_s=30)
        raise
    return proc


def run(settings: Settings, rates: list[float], seconds: float, repeat: int = 1) -> dict[str, Any]:
    """Start an isolated speed job, warm it up, run every rate `repeat` times; the results."""
    from tools.stack import kafka

    tag = uuid.uuid4().hex[:8]
    env = {**os.environ, **bench_env(tag)}
    bench_settings = load_settings(environ=env)
    kafka.create_topics(bench_settings)
    job = start_job(bench_settings, env, settings.state_dir / "bench" / tag)
    try:
        job_pid = job.pid()
        if job_pid is None:
            raise ServiceError(f"the bench's speed job exited:\n{job.log_tail(30)}")
        _one_run(bench_settings, job_pid, min(rates), 5.0, "warmup")
        runs = [
            _one_run(bench_settings, job_pid, rate, seconds, f"r{int(rate)}-{i}")
            for rate in rates
            for i in range(repeat)
        ]
    finally:
        job.stop(timeout_s=30)
    return {
        "machine": {"cpus": psutil.cpu_count(), "load_avg_1m_at_end": round(os.getloadavg()[0], 2)},
        "config": {
            "bundle_time_ms": settings.speed.bundle_time_ms,
            "bundle_size": settings.speed.bundle_size,
            "buffer_timeout_ms": settings.speed.buffer_timeout_ms,
            "mini_batch_latency_ms": settings.speed.mini_batch_latency_ms,
            "parallelism": settings.speed.parallelism,
            "score_events": settings.speed.score_events,
            "signals_flush_ms": settings.speed.signals_flush_ms,
            "jvm_opts": settings.speed.jvm_opts,
            "bucket_s": settings.batch.bucket_s,
        },
        "runs": runs,
        "summary": _summary(runs),
    }


def write(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
