"""The speed view's values and how a read of them decodes: the codecs every store and reader share.

Per user (fields of the `{p}:user:{user_id}` hash, as JSON): `recent` (the last interactions)
and `fresh` (candidates scored right after an event). Written by the speed layer as absolute
values (a replay writes the same bytes), read by the serving layer and the evaluation. Every
interaction carries its event time, so a reader merging with a batch version as-of T uses only
interactions at or after T (the batch profile already holds the rest). Beside the hash, the
user's seen set (`{p}:user:{user_id}:seen`, lambdastack.keys): every item interacted with, of
which a feed reads those since T (`SpeedRead.seen`; the batch history holds the older ones).

Per item: counts per event-time bucket and per minute (the sliding windows, one rule:
`minute_windows`), and the live total since a version's as-of (`{p}:since:{as_of_ms}`, every
bucket at or after it, kept by the speed layer). Per feed: `SpeedRead`, what one read returned:
its counts and movers come from the as-of's live total, or, where the speed layer keeps none
(yet), from the sum of the newest buckets since the as-of (`from_total` says which).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from lambdastack.keys import ALL_TYPES, KeyLayout, bucket_start

log = logging.getLogger("lambdastack.speedview")
RECENT_FIELD = "recent"
FRESH_FIELD = "fresh"
MINUTE_MS = 60_000
WINDOWS_MIN = {"1m": 1, "10m": 10, "1h": 60}  # the item endpoint's windows: name -> minutes


@dataclass(frozen=True, slots=True)
class Interaction:
    """One interaction of a user: the event without its user. `event_id` orders equal event times
    where it is known (the Flink window entries carry it; the `recent` field does not store it)."""

    item_id: str
    type: str
    value: float
    event_time_ms: int
    event_id: str = ""


@dataclass(frozen=True, slots=True)
class FreshCandidates:
    """Candidates scored by `model_version` right after the user's event at `event_time_ms`."""

    view_version: str
    model_version: str
    event_time_ms: int
    items: tuple[tuple[str, float], ...]


UserView = tuple[tuple[Interaction, ...], FreshCandidates | None]
ItemView = tuple[dict[str, int], dict[str, dict[str, int]]]  # (counts since the as-of, windows)
TrendingView = tuple[int | None, list[tuple[str, float]]]  # (window end, items best first)


@dataclass(frozen=True)
class SpeedRead:
    """What the speed view says for one feed request (plain data: the feed ranks from it)."""

    ok: bool  # False: the store was unreachable or over budget, and everything below is empty
    counts: Mapping[str, int]  # item -> events at or after the batch as-of (see from_total)
    movers: tuple[tuple[str, int], ...] = ()  # most engaged items since the as-of
    recent: tuple[Interaction, ...] = ()  # the user's last interactions, oldest first
    fresh: FreshCandidates | None = None
    trending: tuple[tuple[str, float], ...] = ()
    trending_end_ms: int | None = None
    seen: frozenset[str] = frozenset()  # every item the user interacted with since the as-of
    # True: counts and movers are the as-of's live total, exact however old the as-of; False: the
    # sum of at most `serving.speed_buckets_max` buckets since the as-of (the speed layer keeps no
    # total for it: not caught up with a new version yet, or nothing happened since the as-of)
    from_total: bool = False

    @staticmethod
    def unavailable() -> SpeedRead:
        return SpeedRead(False, {})

    def newest_signal_ms(self) -> int | None:
        """Event time of the freshest signal in this read (None: there is none)."""
        times = [i.event_time_ms for i in self.recent]
        if self.fresh is not None:
            times.append(self.fresh.event_time_ms)
        if self.trending_end_ms is not None and self.trending:
            times.append(self.trending_end_ms)
        return max(times) if times else None


def encode_recent(interactions: Sequence[Interaction]) -> str:
    """Oldest first."""
    return json.dumps([[i.item_id, i.type, i.value, i.event_time_ms] for i in interactions])


def decode_recent(raw: str | bytes | None) -> list[Interaction]:
    if not raw:
        return []
    return [Interaction(str(a), str(b), float(c), int(d)) for a, b, c, d in orjson.loads(raw)]


def encode_fresh(fresh: FreshCandidates) -> str:
    return json.dumps(
        {
            "view_version": fresh.view_version,
            "model_version": fresh.model_version,
            "event_time_ms": fresh.event_time_ms,
            "items": [[item, round(score, 6)] for item, score in fresh.items],
        }
    )


def decode_fresh(raw: str | bytes | None) -> FreshCandidates | None:
    if not raw:
        return None
    d = orjson.loads(raw)
    return FreshCandidates(
        str(d["view_version"]),
        str(d["model_version"]),
        int(d["event_time_ms"]),
        tuple((str(item), float(score)) for item, score in d["items"]),
    )


def text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def parse_user(raw_recent: Any, raw_fresh: Any) -> UserView:
    """The user hash's fields; a field that does not decode is logged and ignored."""
    recent: tuple[Interaction, ...] = ()
    fresh = None
    try:
        recent = tuple(decode_recent(raw_recent))
    except (ValueError, TypeError, KeyError):
        log.warning("ignoring an unreadable %s field of a user", RECENT_FIELD)
    try:
        fresh = decode_fresh(raw_fresh)
    except (ValueError, TypeError, KeyError):
        log.warning("ignoring an unreadable %s field of a user", FRESH_FIELD)
    return recent, fresh


def buckets_since(as_of_ms: int, now_ms: int, bucket_s: int, max_buckets: int) -> list[int]:
    """Bucket starts from the as-of (or the oldest of the newest `max_buckets`) up to the bucket
    after the one holding now (events slightly ahead of this clock)."""
    size = bucket_s * 1000
    last = bucket_start(now_ms, bucket_s) + size  # events slightly ahead of this clock
    first = max(bucket_start(as_of_ms, bucket_s) if as_of_ms > 0 else 0, last - (max_buckets - 1) * size)
    return list(range(first, last + 1, size))


def minute_windows(
    minutes: Mapping[Any, Any], now_ms: int, windows_min: Mapping[str, int] = WINDOWS_MIN
) -> dict[str, dict[str, int]]:
    """{window: {type or '*': count}} from a minute hash (`{minute_ms}:{type}` -> count), '*'
    always present. A window of N minutes at `now_ms` is the sum of the N newest event-time
    minutes up to and including the minute holding `now_ms`: it covers between N-1 and N minutes
    of events, and an event counts as soon as its minute was written (no wait for a window to
    close). A minute after now (a producer clock ahead) is not counted yet, in any window: "the
    last N minutes" ends at now, and the minute will count once the clock reaches it."""
    current = now_ms - now_ms % MINUTE_MS
    out: dict[str, dict[str, int]] = {w: defaultdict(int) for w in windows_min}
    for raw_field, raw_count in minutes.items():
        minute, etype = KeyLayout.parse_item_field(text(raw_field))
        age = (current - minute) // MINUTE_MS
        if age < 0:
            continue
        count = int(raw_count)
        for w, span in windows_min.items():
            if age < span:
                out[w][etype] += count
    return {w: {ALL_TYPES: 0, **c} for w, c in out.items()}


def item_view(buckets: Mapping[Any, Any], minutes: Mapping[Any, Any], as_of_ms: int, now_ms: int) -> ItemView:
    """(per-type counts in buckets at or after the as-of, `minute_windows`) of an item's two hashes."""
    since: dict[str, int] = defaultdict(int)
    for f, v in buckets.items():
        bucket, etype = KeyLayout.parse_item_field(text(f))
        if bucket >= as_of_ms:
            since[etype] += int(v)
    return {ALL_TYPES: 0, **since}, minute_windows(minutes, now_ms)


def with_movers(
    counts: dict[str, int], movers: Mapping[str, int], movers_n: int
) -> tuple[dict[str, int], tuple[tuple[str, int], ...]]:
    """`counts` completed with every mover's total, and the `movers_n` top movers (ties: by id)."""
    for item, total in movers.items():
        counts.setdefault(item, total)
    top = sorted(movers, key=lambda i: (-movers[i], i))[:movers_n]
    return counts, tuple((i, movers[i]) for i in top)


def merge_bucket_replies(
    candidates: Sequence[str], replies: Sequence[Any], n_buckets: int, movers_n: int
) -> tuple[dict[str, int], tuple[tuple[str, int], ...]]:
    """Sum per-bucket ZMSCORE (candidates) and ZREVRANGE (movers) replies over the buckets: the
    reference of what the feed script sums inside the store (tests compare the two)."""
    counts: dict[str, int] = defaultdict(int)
    movers: dict[str, int] = defaultdict(int)
    step = 2 if candidates else 1
    for n in range(n_buckets):
        for member, score in replies[n * step]:
            movers[text(member)] += int(score)
        if candidates:
            for item, score in zip(candidates, replies[n * step + 1], strict=True):
                if score is not None:
                    counts[item] += int(score)
    return with_movers(dict(counts), movers, movers_n)


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []  # cjson encodes an empty table as {}


def _live_counts(reply: Mapping[str, Any], candidates: Sequence[str]) -> dict[str, int]:
    summed = _list(reply.get("counts"))
    if len(summed) != len(candidates):
        raise ValueError(f"the speed script counted {len(summed)} of {len(candidates)} candidates")
    return {c: int(v) for c, v in zip(candidates, summed, strict=True) if v is not False}


def decode_signals_reply(
    reply: Mapping[str, Any], users: Sequence[str], items: Sequence[str]
) -> tuple[dict[str, tuple[Interaction, ...]], dict[str, int], bool]:
    """(recent interactions per user, live counts per item, from the as-of's total) of one reply
    of the predict route's script (lambdastack.speedstore.feedscript.SIGNALS_LUA)."""
    raw = _list(reply.get("recent"))
    if len(raw) != len(users):
        raise ValueError(f"the speed script read {len(raw)} of {len(users)} users")
    recent = {u: parse_user(r, None)[0] for u, r in zip(users, raw, strict=True)}
    return recent, _live_counts(reply, items), reply.get("live") == "total"


def decode_feed_reply(reply: Mapping[str, Any], candidates: Sequence[str], movers_n: int) -> SpeedRead:
    """The SpeedRead of one feed reply (lambdastack.speedstore.feedscript: its fields)."""
    recent, fresh = parse_user(reply.get("recent"), reply.get("fresh"))
    trending = tuple((str(m), float(sc)) for m, sc in _list(reply.get("trending")))
    counts = _live_counts(reply, candidates)
    totals = {str(m): int(t) for m, t in _list(reply.get("movers"))}
    counts, movers = with_movers(counts, totals, movers_n)
    end = reply.get("trending_end")
    seen = frozenset(str(m) for m in _list(reply.get("seen")))
    end_ms = int(end) if trending and end else None
    from_total = reply.get("live") == "total"
    return SpeedRead(True, counts, movers, recent, fresh, trending, end_ms, seen, from_total)
