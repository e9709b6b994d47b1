"""Ranking metrics of the replay: pessimistic ranks, HR@K and NDCG@K, accumulated per variant and
user segment, and NDCG over replay time.

Ranks are 0-based. Ties count against the target: its rank is the number of other candidate
items that score at least as high (in a feed, also every item the feed places before it). An
item absent from the ranking is a miss at every K.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def rank_in_feed(feed: Sequence[tuple[str, float]], target: str, exclude: Collection[str] = ()) -> int | None:
    """The target's rank in a feed (best first) without the excluded items; None if absent."""
    items = [(i, s) for i, s in feed if i not in exclude or i == target]
    pos = next((n for n, (i, _) in enumerate(items) if i == target), None)
    if pos is None:
        return None
    score = items[pos][1]
    return sum(1 for n, (i, s) in enumerate(items) if n != pos and (n < pos or s >= score))


def hit(rank: int | None, k: int) -> float:
    return 1.0 if rank is not None and rank < k else 0.0


def ndcg(rank: int | None, k: int) -> float:
    """NDCG@k of one relevant item (the ideal DCG is 1)."""
    return 1.0 / math.log2(rank + 2) if rank is not None and rank < k else 0.0


@dataclass
class Cell:
    """Sums of one (variant, segment): queries, HR and NDCG at each K up to k_max."""

    k_max: int
    n: int = 0
    hits: list[float] = field(default_factory=list)
    ndcgs: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.hits = self.hits or [0.0] * self.k_max
        self.ndcgs = self.ndcgs or [0.0] * self.k_max

    def add(self, rank: int | None) -> None:
        self.n += 1
        for k in range(1, self.k_max + 1):
            self.hits[k - 1] += hit(rank, k)
            self.ndcgs[k - 1] += ndcg(rank, k)

    def summary(self) -> dict[str, Any]:
        n = max(self.n, 1)
        return {
            "count": self.n,
            "hr": [round(h / n, 6) for h in self.hits],
            "ndcg": [round(g / n, 6) for g in self.ndcgs],
        }


@dataclass
class Scoreboard:
    """Every variant's metrics by segment ('all' included), query times, and NDCG@k over time."""

    k: int
    segments: tuple[str, ...]
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    timeline: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # (time, NDCG@k)
    shown: dict[str, set[str]] = field(default_factory=dict)  # every item a variant recommended
    places: dict[str, Counter[str]] = field(default_factory=dict)  # feed places per source
    filled: Counter[str] = field(default_factory=Counter)  # feed places filled per variant

    def recommended(self, variant: str, items: Iterable[str], sources: Iterable[Iterable[str]] = ()) -> None:
        """One answer's top k: for coverage, and the share of places each source proposed (an
        item proposed by several sources counts once for each)."""
        items = list(items)
        self.shown.setdefault(variant, set()).update(items)
        self.filled[variant] += len(items)
        c = self.places.setdefault(variant, Counter())
        for by in sources:
            c.update(by)

    def add(self, variant: str, seg: str, rank: int | None, seconds: float, t_ms: int) -> None:
        for s in ("all", seg):
            self.cells.setdefault((variant, s), Cell(self.k)).add(rank)
        self.seconds[variant] = self.seconds.get(variant, 0.0) + seconds
        self.timeline.setdefault(variant, []).append((t_ms, ndcg(rank, self.k)))

    def ndcg_at_k(self, variant: str, seg: str = "all") -> float:
        c = self.cells.get((variant, seg))
        return c.ndcgs[self.k - 1] / c.n if c and c.n else 0.0

    def summary(self, time_bins: int = 20, catalogue: int = 0) -> dict[str, Any]:
        """Per variant: metrics by segment, ms per query, NDCG over time; with `catalogue` (its
        item count) the coverage (distinct items recommended / catalogue); where sources are
        known, each source's share of the filled feed places (sums to more than 1 when items have
        several sources)."""
        out: dict[str, Any] = {}
        for (variant, seg), cell in sorted(self.cells.items()):
            v = out.setdefault(variant, {"segments": {}})
            v["segments"][seg] = cell.summary()
        for variant, v in out.items():
            n = self.cells[(variant, "all")].n
            v["ms_per_query"] = round(1000 * self.seconds.get(variant, 0.0) / max(n, 1), 4)
            v["ndcg_over_time"] = binned(self.timeline.get(variant, []), time_bins)
            if catalogue:
                v["coverage"] = round(len(self.shown.get(variant, ())) / catalogue, 6)
            places = self.places.get(variant)
            if places:
                filled = max(1, self.filled[variant])
                v["source_share"] = {src: round(c / filled, 6) for src, c in sorted(places.items())}
        return out


def binned(points: Sequence[tuple[int, float]], bins: int) -> list[dict[str, float]]:
    """Mean value over consecutive, equally sized groups of time-ordered points."""
    if not points:
        return []
    groups = np.array_split(np.arange(len(points)), min(bins, len(points)))
    return [
        {
            "t_ms": int(points[int(g[-1])][0]),
            "mean": round(float(np.mean([points[int(i)][1] for i in g])), 6),
            "count": int(len(g)),
        }
        for g in groups
    ]
