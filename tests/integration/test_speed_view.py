"""The feed's one Redis round trip against a real Redis (this module's own, so that it can be made
slow and stopped): the feed script's sums equal the per-bucket reference, the Redis and the
in-memory speed stores (and the API's async reader) give the same views for the same writes (seen
sets trimmed alike, read from the as-of on), a Redis that lost its scripts is served, and a slow,
stopped or absent Redis degrades the read instead of failing it, then the reads recover."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lambdastack.keys import KeyLayout
from lambdastack.settings import Settings
from lambdastack.speedstore.memory import MemorySpeedStore
from lambdastack.speedstore.redis import RedisSpeedStore
from lambdastack.speedview import Interaction, SpeedRead, buckets_since, encode_recent, merge_bucket_replies
from serving.speed_view import SpeedView
from tests.conftest import SLOT
from tests.integration.helpers import OwnRedis
from tests.unit.test_speedstore import AS_OF, NOW, record_batch, tracked_writes
from tests.unit.test_speedstore import H as HOUR

pytestmark = pytest.mark.integration
H = 3_600_000
PORT = 16379 + 10 * SLOT + 8


@pytest.fixture
def own(tmp_path: Path) -> Iterator[OwnRedis]:
    r = OwnRedis(tmp_path / "redis", PORT)
    r.start()
    yield r
    r.stop()


def _settings(isolated, port: int = PORT) -> Settings:
    s = isolated.settings
    return s.model_copy(update={"redis": s.redis.model_copy(update={"port": port})})


def _signals(view: SpeedView, users: list[str], items: list[str], as_of: int, now: int) -> object:
    async def go() -> object:
        await view.open()
        try:
            return await view.signals_for(users, items, as_of, now)
        finally:
            await view.close()

    return asyncio.run(go())


def _read(
    view: SpeedView, candidates: list[str], as_of: int, now: int, pause_s: float = 0, user: str = "u1"
) -> SpeedRead:
    async def go() -> SpeedRead:
        await view.open()
        try:
            await asyncio.sleep(pause_s)
            return await view.read_feed(user, as_of, now, candidates)
        finally:
            await view.close()

    return asyncio.run(go())


def test_the_script_sums_buckets_as_the_reference_does_and_survives_a_script_flush(isolated, own):
    s = _settings(isolated)
    r, keys = own.client(), KeyLayout(s.redis.key_prefix)
    now = int(time.time() * 1000)
    as_of = now - 6 * H
    buckets = buckets_since(as_of, now, s.batch.bucket_s, s.serving.speed_buckets_max)
    rng = random.Random(7)
    items = [f"i{n}" for n in range(40)]
    for b in buckets[::2] + buckets[-1:]:  # every other bucket exists, the newest always
        r.zadd(keys.bucket(b), {i: rng.randint(1, 30) for i in rng.sample(items, 25)})
    r.hset(keys.user("u1"), "recent", encode_recent([Interaction("i3", "view", 1.0, now - 5)]))
    candidates = [*items[:30], "absent-1", "absent-2"]
    movers_n = s.serving.speed_movers_n

    replies: list[object] = []  # what the evaluation harness sums: per bucket, as redis-py reads it
    for b in buckets:
        replies.append(r.zrevrange(keys.bucket(b), 0, movers_n - 1, withscores=True))
        replies.append(r.zmscore(keys.bucket(b), candidates) if r.exists(keys.bucket(b)) else [None] * 32)
    counts, movers = merge_bucket_replies(candidates, replies, len(buckets), movers_n)

    snap = _read(SpeedView(s), candidates, as_of, now)
    assert snap.ok and snap.counts == counts and snap.movers == movers
    assert "absent-1" not in snap.counts and len(snap.movers) == movers_n
    assert [i.item_id for i in snap.recent] == ["i3"]

    r.script_flush()  # a restarted Redis has no scripts: EVALSHA fails, EVAL loads it again
    again = _read(SpeedView(s), [], as_of, now)
    assert again.ok and again.movers == movers and again.recent == snap.recent


def test_the_redis_and_in_memory_stores_give_the_same_views_for_the_same_writes(isolated, own):
    s = _settings(isolated)
    # the bucket writes, and the live totals since AS_OF and AS_OF + 1 h fed by more of them
    writes = record_batch(KeyLayout(s.redis.key_prefix)) + tracked_writes(KeyLayout(s.redis.key_prefix))
    memory = MemorySpeedStore.from_settings(s)
    memory.apply(writes)
    redis_store = RedisSpeedStore(s).open()
    try:
        redis_store.apply(writes)
        r = own.client()
        for user in ("u1", "u2", "nobody"):
            assert redis_store.user(user) == memory.user(user), user
            seen = KeyLayout(s.redis.key_prefix).seen(user)  # the trim kept what the twin kept
            assert dict(r.zrange(seen, 0, -1, withscores=True)) == {
                m.encode(): sc for m, sc in memory.zset(seen).items()
            }, user
        for item in [f"i{n}" for n in range(16)]:
            for as_of in (0, AS_OF, AS_OF + 2 * HOUR):
                assert redis_store.item(item, as_of, NOW) == memory.item(item, as_of, NOW), (item, as_of)
        for k in (1, 2, 10):
            assert redis_store.trending(k) == memory.trending(k), k
        reads = [  # (user, as-of, candidates, whether the as-of has a live total)
            ("u1", AS_OF, [f"i{n}" for n in range(12)] + ["absent"], True),
            ("u1", AS_OF + HOUR + 7, ["i3"], False),  # the seen set from a score on; the buckets
            ("u2", AS_OF + HOUR, ["i1", "i2", "i6"], True),
            ("u2", AS_OF - HOUR, ["i1", "i2", "i6"], False),
            ("u2", 0, [], False),
            ("nobody", AS_OF, [], True),
        ]
        for user, as_of, candidates, total in reads:
            want = memory.read_feed(user, as_of, NOW, candidates)
            assert want.ok and want.from_total == total, user
            assert redis_store.read_feed(user, as_of, NOW, candidates) == want, user
            assert _read(SpeedView(s), candidates, as_of, NOW, user=user) == want, user
            # the predict route's signals: the feed's live counts and the user's recent interactions
            counts = {c: want.counts[c] for c in candidates if c in want.counts}
            got = _signals(SpeedView(s), [user, "nobody"], candidates, as_of, NOW)
            assert got == ({user: want.recent, "nobody": ()}, counts), user
    finally:
        redis_store.close()


def test_a_slow_stopped_or_absent_redis_degrades_the_read_then_reads_recover(isolated, own):
    s = _settings(isolated)
    budget_s = s.redis.socket_timeout_ms / 1000
    now = int(time.time() * 1000)
    view = SpeedView(s, retry_after_s=0.2)

    async def scenario() -> tuple[bool, bool, float, bool]:
        await view.open()
        try:
            before = (await view.read_feed("u1", 0, now, ["a"])).ok
            sleeper = threading.Thread(target=lambda: own.client().execute_command("DEBUG", "SLEEP", "1"))
            sleeper.start()
            await asyncio.sleep(0.1)
            started = time.monotonic()
            slow = (await view.read_feed("u1", 0, now, ["a"])).ok
            took = time.monotonic() - started
            await asyncio.to_thread(sleeper.join)
            await asyncio.sleep(0.3)  # past retry_after_s: the next read reconnects
            return before, slow, took, (await view.read_feed("u1", 0, now, ["a"])).ok
        finally:
            await view.close()

    before, slow, took, after = asyncio.run(scenario())
    assert before and not slow and took < budget_s + 0.5 and after

    own.stop()
    assert not _read(SpeedView(s), ["a"], 0, now).ok
    own.start()
    assert _read(SpeedView(s), ["a"], 0, now).ok
    assert not _read(SpeedView(_settings(isolated, port=1)), ["a"], 0, now).ok  # nothing listens
