"""Trending items: engagement velocity against the batch baseline (the loader's pure core).

Per closed event-time window (speed.trending_window_s, sliding by speed.trending_slide_s) Flink
counts the distinct users of each item; one user hammering an item counts once. The expected
number is the item's batch rate (events per hour over the history of the current batch version)
times the window, floored at `min_expected` (new items, no version yet). The score is the Poisson
z-score (users - expected) / sqrt(expected): unlike a ratio it asks a popular item for a lift
that is large against its own noise, and the floor keeps a new item with a handful of users
from an infinite score. An item trends when it has at least `min_users` users and a score of at
least `min_z`; the `top_n` best, by score, form the ranked set of that window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from lambdastack.keys import KeyLayout
from lambdastack.speedstore.base import Write


@dataclass(frozen=True, slots=True)
class WindowCount:
    item_id: str
    users: int
    events: int


@dataclass(frozen=True, slots=True)
class TrendingRule:
    window_s: int
    min_users: int
    min_z: float
    min_expected: float
    top_n: int


def decode_counts(raw: str | None) -> list[WindowCount]:
    """The `items` field of a trending record: 'item users events' joined by ';'."""
    out = []
    for part in (raw or "").split(";"):
        if part:
            item, users, events = part.split(" ")
            out.append(WindowCount(item, int(users), int(events)))
    return out


def z_score(users: int, expected: float) -> float:
    return (users - expected) / math.sqrt(expected)


def rank(
    counts: list[WindowCount], rates_per_hour: Mapping[str, float], rule: TrendingRule
) -> list[tuple[str, float]]:
    """(item, score) of the trending items of one window, best first (ties by item id)."""
    hours = rule.window_s / 3600
    scored = []
    for c in counts:
        if c.users < rule.min_users:
            continue
        expected = max(rates_per_hour.get(c.item_id, 0.0) * hours, rule.min_expected)
        z = z_score(c.users, expected)
        if z >= rule.min_z:
            scored.append((c.item_id, round(z, 6)))
    scored.sort(key=lambda x: (-x[1], x[0]))
    return scored[: rule.top_n]


def trending_writes(
    window_end_ms: int, ranked: list[tuple[str, float]], layout: KeyLayout, ttl_s: int, newest: bool
) -> list[Write]:
    """Replace the window's ranked set (absolute); move `latest` only for a newer window."""
    key = layout.trending(window_end_ms)
    out = [Write("del", key)]
    out += [Write("zadd", key, item, score, ttl_s=ttl_s) for item, score in ranked]
    if newest:
        out.append(Write("set", layout.trending_latest(), "", window_end_ms, ttl_s=ttl_s))
    return out
