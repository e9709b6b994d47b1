"""What `lambdastack doctor` asks the real services, each question bounded by
`doctor.probe_timeout_s`: small functions that return plain facts or raise. `gather` runs them
side by side in daemon threads, so a service that hangs costs the timeout once, never a stack trace:
a probe that raised or did not return in time comes back as a one-line error.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from lambdastack.jars import kafka_classpath
from lambdastack.keys import KeyLayout
from lambdastack.settings import Settings


@dataclass(frozen=True)
class Outcome:
    value: Any = None
    error: str | None = None  # one line: why the probe has no value


def one_line(e: BaseException) -> str:
    """An exception as one short line (a Kafka error as its own text, not its repr)."""
    first = e.args[0] if e.args else None
    raw = str(first.str()) if first is not None and hasattr(first, "str") else str(e)
    text = " ".join(raw.split()) or type(e).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def gather(probes: Mapping[str, Callable[[], Any]], timeout_s: float) -> dict[str, Outcome]:
    """Run every probe at once; each gets until `timeout_s` from now to return."""
    out: dict[str, Outcome] = {}
    lock = threading.Lock()

    def run(name: str, probe: Callable[[], Any]) -> None:
        try:
            result = Outcome(probe())
        except Exception as e:  # noqa: BLE001 - any failure of a probe is a failed check
            result = Outcome(error=one_line(e))
        with lock:
            out.setdefault(name, result)

    threads = [threading.Thread(target=run, args=item, daemon=True) for item in probes.items()]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout_s
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    with lock:
        for name in probes:
            out.setdefault(name, Outcome(error=f"no answer within {timeout_s:g} s"))
        return dict(out)


def _admin(s: Settings) -> Any:
    from confluent_kafka.admin import AdminClient

    ms = str(int(s.doctor.probe_timeout_s * 1000))
    return AdminClient({"bootstrap.servers": s.kafka.bootstrap, "socket.timeout.ms": ms, "log_level": 0})


def kafka(s: Settings) -> dict[str, Any]:
    """Brokers answering, the version of the broker jar, and every partition's end offset and
    newest record time of the platform's topics (None when a topic is empty or absent)."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec

    admin, t = _admin(s), s.doctor.probe_timeout_s
    meta = admin.list_topics(timeout=t)
    jars = sorted(kafka_classpath(s).glob("kafka_2.13-*.jar"))
    version = jars[-1].stem.split("-", 1)[1] if jars else f"{s.kafka.version} (configured)"
    topics = {s.topics.events, s.topics.signals, s.topics.users}
    parts = [TopicPartition(n, p) for n in topics if n in meta.topics for p in meta.topics[n].partitions]

    def offsets(spec: Any) -> dict[Any, Any]:
        return {tp: f.result(timeout=t) for tp, f in admin.list_offsets(dict.fromkeys(parts, spec)).items()}

    end = {(tp.topic, tp.partition): (low.offset, high.offset) for tp, low, high in _pairs(offsets)}
    stamps: dict[str, int | None] = dict.fromkeys(topics)
    for tp, r in offsets(OffsetSpec.max_timestamp()).items():
        if r.offset >= 0 and r.timestamp >= 0:
            stamps[tp.topic] = max(stamps[tp.topic] or 0, r.timestamp)
    return {"brokers": len(meta.brokers), "version": version, "end": end, "newest_ms": stamps}


def _pairs(offsets: Callable[[Any], dict[Any, Any]]) -> list[tuple[Any, Any, Any]]:
    """(partition, earliest, latest) of each partition `offsets` asks about."""
    from confluent_kafka.admin import OffsetSpec

    low, high = offsets(OffsetSpec.earliest()), offsets(OffsetSpec.latest())
    return [(tp, low[tp], high[tp]) for tp in high]


def committed(s: Settings, groups: Mapping[str, tuple[str, ...]]) -> dict[str, dict[tuple[str, int], int]]:
    """Each consumer group's committed offsets (topic, partition) -> offset, of its topics (the
    admin API takes one group a request)."""
    from confluent_kafka import ConsumerGroupTopicPartitions

    admin, t = _admin(s), s.doctor.probe_timeout_s
    futures = {
        g: admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)], request_timeout=t)[g]
        for g in groups
    }
    out = {}
    for group, f in futures.items():
        tps = f.result(timeout=t).topic_partitions or []
        out[group] = {
            (tp.topic, tp.partition): tp.offset for tp in tps if tp.topic in groups[group] and tp.offset >= 0
        }
    return out


def behind(
    ends: Mapping[tuple[str, int], tuple[int, int]],
    offsets: Mapping[tuple[str, int], int] | None,
    topics: tuple[str, ...],
) -> int | None:
    """Records of `topics` past `offsets`, over (earliest, latest) per partition: a partition
    without an offset lags by all it holds. None when there are no offsets at all (a group that
    never committed)."""
    if offsets is None:
        return None
    return sum(
        max(0, high - max(low, offsets.get(tp, low))) for tp, (low, high) in ends.items() if tp[0] in topics
    )


def redis(s: Settings) -> dict[str, Any]:
    """The server's version and memory, the speed loader's heartbeat and the newest drift report."""
    import redis as redis_client

    r, t = s.redis, s.doctor.probe_timeout_s
    client = redis_client.Redis(
        host=r.host, port=r.port, db=r.db, socket_timeout=t, socket_connect_timeout=t, decode_responses=True
    )
    try:
        info: dict[str, Any] = {**client.info("server"), **client.info("memory")}  # type: ignore[dict-item]
        keys = KeyLayout(r.key_prefix)
        beat, drift = client.hgetall(keys.speed_loader()), client.hgetall(keys.drift())
    finally:
        client.close()
    return {
        "version": info["redis_version"],
        "memory": int(info.get("used_memory", 0)),
        "beat": beat,
        "drift": drift,
    }


def api(s: Settings) -> dict[str, Any]:
    """GET /version of the API: the code version and the view and model versions it holds."""
    import httpx

    r = httpx.get(f"http://{s.serving.host}:{s.serving.port}/version", timeout=s.doctor.probe_timeout_s)
    r.raise_for_status()
    return dict(r.json())


def restarts(s: Settings, job_id: str) -> int | None:
    """The Flink job's restarts, from Flink's Prometheus reporter (None when it is off)."""
    import httpx

    if not s.speed.flink_metrics_port:
        return None
    text = httpx.get(
        f"http://127.0.0.1:{s.speed.flink_metrics_port}/metrics", timeout=s.doctor.probe_timeout_s
    ).text
    found = re.findall(r"^flink_jobmanager_job_numRestarts\{([^}]*)\} (\S+)$", text, re.M)
    mine = [float(v) for labels, v in found if f'job_id="{job_id}"' in labels] or [float(v) for _, v in found]
    if not mine:
        raise LookupError(f"Flink's reporter on port {s.speed.flink_metrics_port} shows no numRestarts")
    return int(max(mine))


def disk(state_dir: Path, timeout_s: float) -> tuple[int, bool, int]:
    """(bytes under the state directory, whether all were counted in time, bytes free on its disk)."""
    import shutil

    deadline, used, stack = time.monotonic() + timeout_s, 0, [str(state_dir)]
    while stack:
        if time.monotonic() > deadline:
            break
        try:
            with os.scandir(stack.pop()) as entries:
                for e in entries:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    elif e.is_file(follow_symlinks=False):
                        used += e.stat(follow_symlinks=False).st_blocks * 512
        except OSError:
            continue
    return used, not stack, shutil.disk_usage(state_dir).free


def flink_version() -> str:
    return f"flink {metadata.version('apache-flink')}"
