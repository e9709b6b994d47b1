"""The replay harness against the real stack: the same stream goes through the producer, Kafka,
the Flink job, the loaders and Redis, and for every sampled query the API's feed equals the
harness's `merged` feed (and Redis holds the harness's in-memory speed store byte for byte: the
users' hashes and seen sets, the buckets, the live total since the version's as-of)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import httpx
import pytest
import redis as redis_client

from batch.job import run as batch_run
from lambdastack.events import Event
from lambdastack.keys import KeyLayout, bucket_start
from lambdastack.producer import EventProducer
from lambdastack.speedview import FRESH_FIELD, RECENT_FIELD
from tests.conftest import make_isolated
from tests.integration.conftest import start_api, start_speed_job
from tests.integration.helpers import eventually, load_synthetic
from tools.evaluation.replay import open_variants
from tools.evaluation.variants import MERGED, Variants

pytestmark = pytest.mark.integration
HOUR = 3_600_000
DAY = 24 * HOUR
K = 10
QUERIES = 24
ENV = {
    "LAMBDASTACK_SPEED__METRICS_PORT": "0",
    "LAMBDASTACK_SPEED__ARCHIVE_ENABLED": "false",
    # trending needs a closed event-time window of the wall clock; the sampled stream is too short
    "LAMBDASTACK_SPEED__TRENDING_MIN_USERS": "1000",
    "LAMBDASTACK_REDIS__SOCKET_TIMEOUT_MS": "2000",  # a loaded test machine must not degrade the feed
}


def _stream(
    users: list[str], items: list[str], start_ms: int, n: int, seen: Callable[[str], frozenset[str]]
) -> list[Event]:
    """n positive and negative interactions of known and new users, one second apart, each with an
    item its user had not interacted with (so that each is asked about)."""
    types = [("rating", 4.5), ("view", 1.0), ("like", 1.0), ("rating", 2.0), ("watch", 300.0), ("click", 1.0)]
    out = []
    used: dict[str, set[str]] = {}
    for j in range(n):
        user = users[j % len(users)] if j % 4 else f"new{j % 3}"
        etype, value = types[j % len(types)]
        mine = used.setdefault(user, set(seen(user)))
        item = next(
            items[(7 * j + k) % len(items)]
            for k in range(len(items))
            if items[(7 * j + k) % len(items)] not in mine
        )
        mine.add(item)
        out.append(Event(f"e{uuid.uuid4().hex}", user, item, etype, value, start_ms + j * 1000))
    return out


def _redis_state(
    r: redis_client.Redis, keys: KeyLayout, users: set[str], buckets: list[int], as_of: int
) -> tuple:
    def zset(key: str) -> dict[str, int]:
        return {m.decode(): int(c) for m, c in r.zrange(key, 0, -1, withscores=True)}

    fields = {u: tuple(r.hmget(keys.user(u), [RECENT_FIELD, FRESH_FIELD])) for u in sorted(users)}
    seen = {u: zset(keys.seen(u)) for u in sorted(users)}
    return fields, seen, {b: zset(keys.bucket(b)) for b in buckets}, zset(keys.since(as_of))


def _harness_state(
    variants: Variants, keys: KeyLayout, users: set[str], buckets: list[int], as_of: int
) -> tuple:
    store = variants.state.store(MERGED)  # the in-memory speed store the harness writes through

    def zset(key: str) -> dict[str, int]:
        return {m: int(c) for m, c in store.zset(key).items()}

    fields = {
        u: tuple(store.hash(keys.user(u)).get(f) for f in (RECENT_FIELD, FRESH_FIELD)) for u in sorted(users)
    }
    seen = {u: zset(keys.seen(u)) for u in sorted(users)}
    return fields, seen, {b: zset(keys.bucket(b)) for b in buckets}, zset(keys.since(as_of))


def test_the_api_returns_the_harness_feed_for_every_sampled_query(
    services, base_env, tmp_path, stopper, spark
):
    iso = make_isolated(base_env, tmp_path, **ENV)
    s = iso.settings
    now = int(time.time() * 1000)
    load_synthetic(s, n_users=30, n_items=60, n_events=1500, seed=13, start_ms=now - 4 * DAY, days=3)
    version = batch_run(s, as_of_ms=now - HOUR, echo=lambda _m: None)  # on the session's Spark
    stopper.append(start_speed_job(iso))
    stopper.append(start_api(iso))
    base = f"http://{s.serving.host}:{s.serving.port}"
    eventually(lambda: httpx.get(f"{base}/ready").status_code == 200, 60, "the API ready")

    variants = open_variants(s, version, K)
    view = variants.full.view
    users = sorted(u for u in view.profiles if view.seen(u))[:8]
    stream = _stream(
        users, sorted(view.index), bucket_start(now - HOUR, s.batch.bucket_s) + 1000, QUERIES, view.seen
    )
    r = redis_client.Redis(host=s.redis.host, port=s.redis.port)
    keys = KeyLayout(s.redis.key_prefix)
    buckets = sorted({bucket_start(e.event_time_ms, s.batch.bucket_s) for e in stream})
    seen = {u: set(view.seen(u)) for u in {e.user_id for e in stream}}
    touched: set[str] = set()
    asked = 0
    with EventProducer(s) as producer:
        for e in stream:
            want_state = _harness_state(variants, keys, set(touched), buckets, view.as_of_ms)
            try:
                eventually(
                    lambda t=set(touched), w=want_state: (
                        _redis_state(r, keys, t, buckets, view.as_of_ms) == w
                    ),
                    60,
                    "Redis holding the harness's speed state",
                    0.2,
                )
            except AssertionError as err:
                got_state = _redis_state(r, keys, touched, buckets, view.as_of_ms)
                raise AssertionError(
                    f"{err}\nredis: {got_state}\nharness: {want_state}\n{stopper[0].log_tail(40)}"
                ) from None
            if e.item_id not in seen[e.user_id]:
                t = int(time.time() * 1000)
                got = httpx.get(f"{base}/v1/users/{e.user_id}/feed", params={"k": K}, timeout=10).json()
                want = variants.merged(e.user_id, t)
                assert got["degraded"] is False and got["view_version"] == version
                assert [i["item_id"] for i in got["items"]] == [i for i, _, _ in want], (e, got, want)
                assert [tuple(i["sources"]) for i in got["items"]] == [by for _, _, by in want]
                asked += 1
            producer.send(e)
            producer.flush()
            variants.state.apply(e)
            seen[e.user_id].add(e.item_id)
            touched.add(e.user_id)
    assert asked == QUERIES
    assert variants.state.store(MERGED).zset(keys.since(view.as_of_ms))  # the feeds read the live total
