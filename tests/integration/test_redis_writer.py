"""The Redis speed store's writes (the loader's) against a real Redis: grouped commands, TTLs on
every key, and a TTL renewed only when due, yet never missing after a removal may have deleted
the key."""

import pytest

from lambdastack.speedstore.base import Write
from lambdastack.speedstore.redis import EXPIRE_REFRESH, RedisSpeedStore

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_writes_land_grouped_with_a_ttl_that_survives_removals(services, isolated):
    import redis

    s = isolated.settings
    r = redis.Redis(host=s.redis.host, port=s.redis.port, db=s.redis.db)
    clock = Clock()
    writer = RedisSpeedStore(s, clock=clock).open()
    p = s.redis.key_prefix
    try:
        writer.apply(
            [
                Write("hset", f"{p}:h", "a", 1),
                Write("hset", f"{p}:h", "b", 2.0),
                Write("zadd", f"{p}:z", "i1", 3),
                Write("hset", f"{p}:m", "x", 1, ttl_s=600),
                Write("hdel", f"{p}:h", "a"),  # after the hset of the same field: it is gone
                Write("hset", f"{p}:h", "c", 4),
            ]
        )
        assert r.hgetall(f"{p}:h") == {b"b": b"2", b"c": b"4"}
        assert r.zscore(f"{p}:z", "i1") == 3.0
        assert 0 < r.ttl(f"{p}:h") <= s.redis.signal_ttl_s and 0 < r.ttl(f"{p}:m") <= 600

        r.persist(f"{p}:z")  # a TTL already set is not sent again until it is due ...
        writer.apply([Write("zadd", f"{p}:z", "i1", 4)])
        assert r.ttl(f"{p}:z") == -1
        clock.now += s.redis.signal_ttl_s * EXPIRE_REFRESH + 1  # ... and then it is
        writer.apply([Write("zadd", f"{p}:z", "i1", 5)])
        assert r.ttl(f"{p}:z") > 0

        writer.apply([Write("zrem", f"{p}:z", "i1")])  # the last member: Redis deletes the key
        assert not r.exists(f"{p}:z")
        writer.apply([Write("zadd", f"{p}:z", "i2", 1)])  # recreated: it gets a TTL again
        assert r.ttl(f"{p}:z") > 0
    finally:
        writer.close()
        r.delete(f"{p}:h", f"{p}:z", f"{p}:m")


def test_writes_with_totals_give_the_in_memory_totals_get_a_ttl_and_survive_a_script_flush(
    services, isolated
):
    """The same bucket writes with live totals (replays, tombstones and plain writes to a total in
    between) leave Redis with the in-memory store's sorted sets; a Redis that lost the script
    (a restart) gets it again and the batch is applied once."""
    import redis

    from lambdastack.keys import KeyLayout
    from lambdastack.speedstore.memory import MemorySpeedStore
    from tests.unit.test_speedstore import AS_OF, H, tracked_writes

    s = isolated.settings
    keys = KeyLayout(s.redis.key_prefix)
    r = redis.Redis(host=s.redis.host, port=s.redis.port, db=s.redis.db)
    names = [keys.since(AS_OF), keys.since(AS_OF + H), keys.bucket(AS_OF), keys.bucket(AS_OF + H)]
    memory = MemorySpeedStore.from_settings(s)
    memory.apply(tracked_writes(keys))
    writer = RedisSpeedStore(s).open()
    try:
        writer.apply(tracked_writes(keys))
        assert writer.zsets(names) == memory.zsets(names)
        assert all(0 < r.ttl(k) <= s.redis.signal_ttl_s for k in names)
        r.script_flush()
        writer.apply([w for w in tracked_writes(keys) if w.totals])  # NOSCRIPT, loaded, sent again
        assert writer.zsets(names) == memory.zsets(names)
        r.persist(keys.since(AS_OF + H))  # a total without a TTL gets one from the next tracked write
        writer.apply([Write("zadd", keys.bucket(AS_OF + H), "i5", 1, totals=(keys.since(AS_OF + H),))])
        assert r.ttl(keys.since(AS_OF + H)) > 0 and r.zscore(keys.since(AS_OF + H), "i5") == 1.0
    finally:
        writer.close()
        r.delete(*names)
