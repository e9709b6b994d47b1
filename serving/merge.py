"""Merge the batch view and the speed view into a ranked feed: pure logic, no I/O.

No double counting: the batch view holds every event before its as-of, the speed counts passed
in here are those of buckets at or after that as-of (see lambdastack.keys), so an item's total
is the plain sum of the two.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FeedItem:
    item_id: str
    score: float
    batch_count: int
    speed_count: int
    sources: tuple[str, ...]


BATCH_POPULAR = "batch_popular"
SPEED_FRESH = "speed_fresh"


def merge_feed(
    batch_popular: Iterable[str],
    batch_counts: Mapping[str, int],
    speed_counts: Mapping[str, int],
    seen: frozenset[str] | set[str],
    k: int,
) -> list[FeedItem]:
    """Rank the union of batch-popular and speed-fresh items by merged engagement, unseen only."""
    sources: dict[str, list[str]] = {}
    for item in batch_popular:
        sources.setdefault(item, []).append(BATCH_POPULAR)
    for item, n in speed_counts.items():
        if n > 0:
            sources.setdefault(item, []).append(SPEED_FRESH)
    ranked = []
    for item, srcs in sources.items():
        if item in seen:
            continue
        b, s = int(batch_counts.get(item, 0)), int(speed_counts.get(item, 0))
        ranked.append(FeedItem(item, float(b + s), b, s, tuple(srcs)))
    ranked.sort(key=lambda f: (-f.score, f.item_id))
    return ranked[:k]
