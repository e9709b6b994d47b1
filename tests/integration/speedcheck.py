"""Helpers of the speed-layer runtime tests: a known stream, its exact counts, Redis as read back."""

from __future__ import annotations

import random
import re
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import redis as redis_client

from lambdastack.events import Event
from lambdastack.keys import KeyLayout, bucket_start
from lambdastack.producer import EventProducer
from lambdastack.settings import Settings
from tests.conftest import Isolated, make_isolated
from tests.integration.helpers import eventually, start_cli
from tools.stack.process import ManagedProcess

Key = tuple[str, int, str]


def speed_isolated(base_env: dict[str, str], tmp_path: Path, **extra: str) -> Isolated:
    """Isolated settings for a `speed run` test: 60 s buckets, fast checkpoints, no archive, no
    metrics port, and a plain stop cancels (a savepoint is asked for explicitly)."""
    return make_isolated(
        base_env,
        tmp_path,
        LAMBDASTACK_BATCH__BUCKET_S="60",
        LAMBDASTACK_SPEED__ARCHIVE_ENABLED="false",
        LAMBDASTACK_SPEED__METRICS_PORT="0",
        LAMBDASTACK_SPEED__SAVEPOINT_ON_STOP="false",
        **extra,
    )


def make_events(n: int, seed: int, items: int = 8, ids: str = "") -> list[Event]:
    """`n` valid events of the last 3 minutes (60 s buckets in the tests) over a few items; user
    and item ids start with `ids` (tests sharing one job keep to keys of their own)."""
    rng = random.Random(seed)
    now = int(time.time() * 1000)
    return [
        Event(
            f"e{uuid.uuid4().hex}",
            f"{ids}u{rng.randrange(20)}",
            f"{ids}i{rng.randrange(items)}",
            rng.choice(["view", "like", "share", "watch"]),
            1.0,
            now - rng.randrange(0, 180_000),
        )
        for _ in range(n)
    ]


def send(settings: Settings, events: list[Event], rate: float = 0.0) -> None:
    """Send events (paced at `rate` per second when > 0) and flush."""
    start = time.monotonic()
    with EventProducer(settings) as producer:
        for n, e in enumerate(events):
            if rate > 0 and (delay := start + n / rate - time.monotonic()) > 0:
                time.sleep(delay)
            producer.send(e)


def expected_counts(events: list[Event], bucket_s: int) -> Counter[Key]:
    """The speed view computed directly from the input: counts per item x bucket x type (and *)."""
    out: Counter[Key] = Counter((e.item_id, bucket_start(e.event_time_ms, bucket_s), e.type) for e in events)
    out.update(Counter((e.item_id, bucket_start(e.event_time_ms, bucket_s), "*") for e in events))
    return out


def redis_counts(settings: Settings, items: set[str]) -> dict[Key, int]:
    r = redis_client.Redis(host=settings.redis.host, port=settings.redis.port)
    layout = KeyLayout(settings.redis.key_prefix)
    out = {}
    for item in items:
        for f, v in r.hgetall(layout.item(item)).items():
            bucket, etype = KeyLayout.parse_item_field(f.decode())
            out[(item, bucket, etype)] = int(v)
    return out


def diff(settings: Settings, expected: Counter[Key]) -> dict[Key, tuple[int | None, int | None]]:
    """Keys whose Redis count differs from the expected one: (got, expected)."""
    got = redis_counts(settings, {k[0] for k in expected})
    return {
        k: (got.get(k), expected.get(k)) for k in set(got) | set(expected) if got.get(k) != expected.get(k)
    }


def wait_exact(settings: Settings, expected: Counter[Key], timeout_s: float, log: ManagedProcess) -> None:
    try:
        eventually(lambda: not diff(settings, expected), timeout_s, "Redis holding the exact counts", 0.5)
    except AssertionError as e:
        raise AssertionError(
            f"{e}\ndiff (got, expected): {diff(settings, expected)}\nlog:\n{log.log_tail(60)}"
        ) from None


def start_speed(
    iso: Isolated, name: str, *args: str, env: dict[str, str] | None = None
) -> tuple[ManagedProcess, str]:
    """Start `lambdastack speed run ARGS`; wait until its job runs; (process, job id)."""
    proc = start_cli(
        name, ["speed", "run", *args], env or iso.env, iso.settings.state_dir / "tests" / iso.tag
    )
    eventually(
        lambda: "running; loading signals" in proc.log_tail(50) or not proc.running(),
        180,
        f"{name} start",
        1.0,
    )
    assert proc.running(), f"{name} exited:\n{proc.log_tail(40)}"
    m = re.search(r"\[speed\] job ([0-9a-f]{32}) running", proc.log_file.read_text())
    assert m, proc.log_tail(20)
    return proc, m.group(1)


def redis_snapshot(r: Any, prefix: str) -> dict[str, object]:
    """Every key of the speed view with its value (not the loader's own keys, `{p}:speed:*`: the
    epoch's token differs per replay, the heartbeat per second) after checking it has a TTL."""
    out: dict[str, object] = {}
    for key in r.scan_iter(f"{prefix}:*"):
        if key.decode().startswith(f"{prefix}:speed:"):
            continue
        kind = r.type(key).decode()
        if kind == "hash":
            out[key.decode()] = r.hgetall(key)
        elif kind == "zset":
            out[key.decode()] = r.zrange(key, 0, -1, withscores=True)
        else:
            out[key.decode()] = r.get(key)
        assert r.ttl(key) > 0, f"{key!r} has no TTL"
    return out
