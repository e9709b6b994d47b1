"""The in-memory speed store: Redis's value semantics, and reads equal to the per-bucket reference.

The same writes against a real Redis give the same views: tests/integration/test_speed_view.py."""

from __future__ import annotations

import pytest

from lambdastack.keys import KeyLayout
from lambdastack.settings import load_settings
from lambdastack.speedstore.base import Write
from lambdastack.speedstore.memory import MemorySpeedStore, zrevrange
from lambdastack.speedview import (
    FreshCandidates,
    Interaction,
    buckets_since,
    encode_fresh,
    encode_recent,
    merge_bucket_replies,
)

pytestmark = pytest.mark.unit
H = 3_600_000
AS_OF = 1_800_000_000_000  # a bucket start
NOW = AS_OF + 3 * H + 30_000
SETTINGS = load_settings(environ={"LAMBDASTACK_REDIS__KEY_PREFIX": "t"})
KEYS = KeyLayout("t")


def record_batch(keys: KeyLayout = KEYS) -> list[Write]:
    """Writes of every kind the loader sends: buckets, minutes, a user, trending with ties."""
    recent = [Interaction("i3", "view", 1.0, AS_OF + 5), Interaction("i4", "like", 1.0, AS_OF + 9)]
    fresh = FreshCandidates("v1", "v1", AS_OF + 9, (("i7", 0.75), ("i8", 0.5)))
    out = [
        Write("hset", keys.user("u1"), "recent", encode_recent(recent)),
        Write("hset", keys.user("u1"), "fresh", encode_fresh(fresh)),
        Write("hset", keys.user("u2"), "recent", encode_recent(recent[:1])),
    ]
    # u1's seen set: before, at and after the as-of, ties, one item seen twice; trimmed to 6
    for item, t in (
        ("i9", AS_OF - H),
        ("i2", AS_OF - 1),
        ("i3", AS_OF),
        ("i5", AS_OF + 5),
        ("i6", AS_OF + 5),
    ):
        out.append(Write("zadd", keys.seen("u1"), item, t))
    out += [Write("zadd", keys.seen("u1"), i, AS_OF + H + 7) for i in ("i4", "i12", "i11", "i10")]
    out += [Write("zadd", keys.seen("u1"), "i3", AS_OF + 2 * H), Write("ztrim", keys.seen("u1"), value=6)]
    out.append(Write("zadd", keys.seen("u2"), "i3", AS_OF + 5))
    for n, bucket in enumerate((AS_OF - H, AS_OF, AS_OF + 2 * H, AS_OF + 3 * H)):
        for j in range(12):
            item, count = f"i{(j * 5 + n) % 15}", (j * 7 + n) % 4 + 1  # ties between items
            out.append(Write("zadd", keys.bucket(bucket), item, float(count)))
            out.append(Write("hset", keys.item(item), f"{bucket}:*", float(count)))
            out.append(Write("hset", keys.item(item), f"{bucket}:view", count))
    minute = NOW - NOW % 60_000
    for age, count in ((-1, 1000), (0, 2), (5, 3), (30, 4), (70, 5)):  # -1: a minute after now
        out.append(Write("hset", keys.item_minutes("i0"), f"{minute - age * 60_000}:*", count))
    end = minute - 60_000
    out.append(Write("del", keys.trending(end)))
    out += [
        Write("zadd", keys.trending(end), i, s) for i, s in (("a", 4.5), ("c", 4.5), ("b", 4.5), ("d", 3.25))
    ]
    out.append(Write("set", keys.trending_latest(), "", end))
    out.append(Write("zrem", keys.bucket(AS_OF), "i0"))  # a tombstone
    out.append(Write("hdel", keys.item("i0"), f"{AS_OF}:*"))
    return out


def store() -> MemorySpeedStore:
    s = MemorySpeedStore.from_settings(SETTINGS)
    s.apply(record_batch())
    return s


def test_values_are_kept_as_redis_keeps_them_and_emptied_keys_vanish():
    s = MemorySpeedStore.from_settings(SETTINGS)
    s.apply([Write("hset", "h", "a", 2.0), Write("hset", "h", "b", 2.5), Write("hset", "h", "c")])
    s.apply([Write("set", "k", "", 7), Write("zadd", "z", "m", 3)])
    assert s.hash("h") == {"a": b"2", "b": b"2.5", "c": b"0"} and s.get("k") == b"7"
    assert s.hget("h", "b") == b"2.5" and s.fields(["h", "x"]) == {"h": ["a", "b", "c"], "x": []}
    s.apply(
        [Write("zrem", "z", "m"), Write("hdel", "h", "a"), Write("hdel", "h", "b"), Write("hdel", "h", "c")]
    )
    assert s.dump() == ({}, {}, {"k": b"7"})
    s.apply([Write("del", "k")])
    assert s.dump() == ({}, {}, {})


def test_zrevrange_orders_by_score_then_member_descending():
    assert zrevrange({"a": 2.0, "b": 3.0, "c": 2.0, "d": 1.0}, 3) == [("b", 3.0), ("c", 2.0), ("a", 2.0)]


def test_a_trim_keeps_the_highest_scores_as_redis_ranks_them_and_never_empties_a_set():
    s = MemorySpeedStore.from_settings(SETTINGS)
    s.apply([Write("zadd", "z", m, sc) for m, sc in (("a", 1), ("b", 2), ("c", 2), ("d", 3))])
    s.apply([Write("ztrim", "z", value=3), Write("ztrim", "absent", value=3)])
    assert s.zset("z") == {"b": 2.0, "c": 2.0, "d": 3.0} and s.zset("absent") == {}
    s.apply([Write("ztrim", "z", value=2)])  # a tie: the greater member ranks higher
    assert s.zset("z") == {"c": 2.0, "d": 3.0}
    with pytest.raises(ValueError, match="at least 1 member"):
        s.apply([Write("ztrim", "z", value=0)])


def test_the_feed_read_returns_what_the_user_interacted_with_since_the_as_of():
    s = store()
    assert s.zset(KEYS.seen("u1")) == {
        "i3": AS_OF + 2 * H,  # seen again later
        **dict.fromkeys(("i4", "i10", "i11", "i12"), AS_OF + H + 7),
        "i6": AS_OF + 5,  # the tie at AS_OF + 5 kept the greater member; i9 and i2 were the oldest
    }
    assert s.read_feed("u1", AS_OF, NOW, []).seen == {"i3", "i4", "i6", "i10", "i11", "i12"}
    assert s.read_feed("u1", AS_OF + H + 7, NOW, []).seen == {"i3", "i4", "i10", "i11", "i12"}
    assert s.read_feed("u1", AS_OF + 3 * H, NOW, []).seen == frozenset()
    assert s.read_feed("u2", 0, NOW, []).seen == {"i3"} and s.read_feed("nobody", 0, NOW, []).seen == set()


def test_the_feed_read_sums_buckets_as_the_per_bucket_reference_does():
    s, plan = store(), SETTINGS.serving
    candidates = [f"i{n}" for n in range(10)] + ["absent"]
    buckets = buckets_since(AS_OF, NOW, SETTINGS.batch.bucket_s, plan.speed_buckets_max)
    replies: list[object] = []
    for b in buckets:
        members = s.zset(KEYS.bucket(b))
        replies.append(zrevrange(members, plan.speed_movers_n))
        replies.append([members.get(c) for c in candidates])
    counts, movers = merge_bucket_replies(candidates, replies, len(buckets), plan.speed_movers_n)
    read = s.read_feed("u1", AS_OF, NOW, candidates)
    assert read.ok and read.counts == counts and read.movers == movers and "absent" not in read.counts
    assert [i.item_id for i in read.recent] == ["i3", "i4"] and read.fresh is not None
    assert read.trending == (("c", 4.5), ("b", 4.5), ("a", 4.5), ("d", 3.25))  # Redis's tie order
    assert read.trending_end_ms == NOW - NOW % 60_000 - 60_000
    assert s.read_feed("nobody", AS_OF, NOW, []).recent == ()


def test_user_item_and_trending_views():
    s = store()
    assert [i.item_id for i in s.user("u2")[0]] == ["i3"] and s.user("u2")[1] is None
    since, _ = s.item("i6", AS_OF, NOW)
    assert since["*"] == since["view"] > 0
    _, windows = s.item("i0", AS_OF, NOW)
    assert windows["1m"]["*"] == 2 and windows["10m"]["*"] == 5 and windows["1h"]["*"] == 9
    end, top = s.trending(2)
    assert end == NOW - NOW % 60_000 - 60_000 and top == [("c", 4.5), ("b", 4.5)]
    assert MemorySpeedStore.from_settings(SETTINGS).trending(5) == (None, [])


def tracked_writes(keys: KeyLayout = KEYS) -> list[Write]:
    """Bucket writes with live totals, replayed and mixed with plain writes to a total."""
    a, b = keys.since(AS_OF), keys.since(AS_OF + H)
    b0, b1 = keys.bucket(AS_OF), keys.bucket(AS_OF + H)
    return [
        Write("zadd", a, "i9", 4.0),  # a total started by hand, then rewritten whole
        Write("del", a),
        Write("zadd", a, "i8", 1.0),
        Write("zadd", b0, "i1", 3, totals=(a,)),
        Write("zadd", b0, "i1", 5, totals=(a,)),  # the bucket's newer absolute value: +2
        Write("zadd", b0, "i1", 5, totals=(a,)),  # replayed: +0
        Write("zadd", b1, "i1", 2, totals=(a, b)),
        Write("zadd", b1, "i2", 6, totals=(a, b)),
        Write("zadd", a, "i7", 2.0),  # a plain write to a total between tracked ones
        Write("zadd", b1, "i2", 4, totals=(a, b)),
        Write("zrem", b1, "i1", totals=(a, b)),  # a tombstone: i1 leaves b (its total is 0)
        Write("zrem", b1, "absent", totals=(a, b)),
        Write("zadd", b1, "i3", 1),  # no totals: a total never hears of it
    ]


def test_a_write_with_totals_adds_its_change_to_each_and_a_replayed_one_adds_nothing():
    s = MemorySpeedStore.from_settings(SETTINGS)
    s.apply(tracked_writes())
    assert s.zset(KEYS.since(AS_OF)) == {"i8": 1.0, "i1": 5.0, "i2": 4.0, "i7": 2.0}
    assert s.zset(KEYS.since(AS_OF + H)) == {"i2": 4.0}
    assert s.zset(KEYS.bucket(AS_OF + H)) == {"i2": 4.0, "i3": 1.0}
    before = s.dump()
    s.apply([w for w in tracked_writes() if w.totals])  # the bucket records again, after a crash
    assert s.dump() == before
    assert s.zsets([KEYS.since(AS_OF + H), "absent"]) == {KEYS.since(AS_OF + H): {"i2": 4.0}, "absent": {}}


def test_the_feed_reads_the_live_total_of_its_as_of_where_there_is_one_and_the_buckets_otherwise():
    from speed.signals import writes_for
    from speed.totals import LiveTotals

    s = store()
    candidates = [f"i{n}" for n in range(15)] + ["absent"]
    summed = s.read_feed("u1", AS_OF, NOW, candidates)
    assert summed.ok and not summed.from_total
    live = LiveTotals.from_settings(SETTINGS)
    s.apply(live.follow(AS_OF, s, NOW))  # the loader starts it from the buckets that exist
    read = s.read_feed("u1", AS_OF, NOW, candidates)
    assert read.from_total and read.counts == summed.counts and read.movers == summed.movers
    assert read.recent == summed.recent and read.seen == summed.seen and read.trending == summed.trending
    old = s.zset(KEYS.bucket(AS_OF + 3 * H)).get("i14", 0.0)
    s.apply(writes_for("i14", AS_OF + 3 * H, {"*": 40}, KEYS, live.totals_for(AS_OF + 3 * H)))
    again = s.read_feed("u1", AS_OF, NOW, ["i14"])  # the bucket's new count, in the total at once
    assert again.counts == {**read.counts, "i14": read.counts.get("i14", 0) - int(old) + 40}
    assert again.movers[0] == ("i14", again.counts["i14"])
    # an as-of older than the buckets the fallback sums: the total still holds every event
    env = {"LAMBDASTACK_REDIS__KEY_PREFIX": "t", "LAMBDASTACK_SERVING__SPEED_BUCKETS_MAX": "2"}
    few = MemorySpeedStore.from_settings(load_settings(environ=env))
    few.apply(record_batch())
    bounded = few.read_feed("u1", AS_OF - H, NOW, candidates)
    few.apply(LiveTotals.from_settings(SETTINGS).follow(AS_OF - H, few, NOW))
    whole = few.read_feed("u1", AS_OF - H, NOW, candidates)
    assert whole.from_total and not bounded.from_total
    assert sum(whole.counts.values()) > sum(bounded.counts.values())
    held = [few.zset(KEYS.bucket(b)) for b in (AS_OF - H, AS_OF, AS_OF + 2 * H, AS_OF + 3 * H)]
    assert whole.counts == {
        c: sum(int(z.get(c, 0)) for z in held) for c in candidates if any(c in z for z in held)
    }


def test_the_cached_top_of_a_live_total_is_what_zrevrange_ranks_after_any_writes():
    import random

    rng = random.Random(3)
    s = MemorySpeedStore.from_settings(SETTINGS)
    total = KEYS.since(AS_OF)
    for step in range(3000):
        item, b = f"i{rng.randrange(40)}", KEYS.bucket(AS_OF + rng.randrange(3) * H)
        old = s.zset(b).get(item, 0.0)
        roll = rng.random()
        if roll < 0.85:  # mostly rising counts, as a live stream writes them
            s.apply([Write("zadd", b, item, old + rng.randint(1, 3), totals=(total,))])
        elif roll < 0.95:
            s.apply([Write("zadd", b, item, max(old - 2, 1), totals=(total,))])
        elif roll < 0.98:
            s.apply([Write("zrem", b, item, totals=(total,))])
        else:
            s.apply([Write("zadd", total, item, rng.randint(1, 30))])  # a plain write to the total
        n = rng.choice((1, 5, 20))
        assert s.top(total, n) == zrevrange(s.zset(total), n), step
    assert s.top(total, 0) == []
