"""The feed's candidate sources: their names, the family of each (the training pools are drawn
from the same families, batch.training), and the provenance of a request's candidates that the
model's src_* and rank_* features read (lambdastack.candidate_features)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType

import numpy as np

from lambdastack.candidate_features import FAMILIES, Provenance
from lambdastack.retrieval import outside

SPEED_FRESH = "speed_fresh"  # the speed layer's fresh candidates for the user
BATCH_ALS = "batch_als"  # a user the batch knows: their best items by ALS score in the version
# the items most similar to the user's recent interactions: the decayed sum of similarities over
# the newest knn_recent_n (batch and speed), lambdastack.retrieval
RECENT_NEIGHBOURS = "recent_neighbours"
BATCH_CANDIDATES = "batch_candidates"
TRENDING = "trending"
SPEED_POPULAR = "speed_popular"  # most engaged since the batch as-of
CLUSTER_POPULAR = "cluster_popular"
BATCH_POPULAR = "batch_popular"
SOURCES = (
    SPEED_FRESH,
    BATCH_ALS,
    RECENT_NEIGHBOURS,
    BATCH_CANDIDATES,
    TRENDING,
    SPEED_POPULAR,
    CLUSTER_POPULAR,
    BATCH_POPULAR,
)
# The family each source belongs to, by what it proposes from: the fresh candidates are the
# neighbours of the newest interactions, trending items are live ones, a cluster's popular list is
# a popular list. The batch's precomputed candidates have no counterpart in the training pools and
# so no family: their items get no flag of their own.
FAMILY_OF: Mapping[str, int] = MappingProxyType(
    {
        SPEED_FRESH: FAMILIES.index("knn"),
        RECENT_NEIGHBOURS: FAMILIES.index("knn"),
        BATCH_ALS: FAMILIES.index("als"),
        TRENDING: FAMILIES.index("live"),
        SPEED_POPULAR: FAMILIES.index("live"),
        CLUSTER_POPULAR: FAMILIES.index("popular"),
        BATCH_POPULAR: FAMILIES.index("popular"),
    }
)


class Pool:
    """Candidates in the order they were found, each with the sources that proposed it. A source
    proposes the first `n` items of its list the user has not seen (`history`, or `recent`: the
    speed layer's recent and seen items); once the pool holds `limit` items, a proposed item not
    in it yet is dropped (an item already in it still gets the source)."""

    def __init__(self, history: frozenset[str], recent: frozenset[str], limit: int):
        self.history, self.recent, self.limit = history, recent, limit
        self.sources: dict[str, list[str]] = {}

    def add(self, items: Iterable[str], source: str, n: int) -> None:
        taken = 0
        history, recent, sources = self.history, self.recent, self.sources
        for item in items:
            if taken >= n:
                return
            if item in history or item in recent:
                continue
            taken += 1
            srcs = sources.get(item)
            if srcs is None:
                if len(sources) >= self.limit:
                    continue
                sources[item] = srcs = []
            if source not in srcs:
                srcs.append(source)

    def merge(self, proposed: Mapping[str, tuple[str, ...]]) -> None:
        """Add what several sources proposed, in order (BatchSide.proposed): the same pool as
        their `add` calls one after the other, for lists nothing in it has been seen from."""
        sources, limit = self.sources, self.limit
        for item, by in proposed.items():
            srcs = sources.get(item)
            if srcs is None:
                if len(sources) < limit:
                    sources[item] = list(by)
                continue
            for source in by:
                if source not in srcs:
                    srcs.append(source)


def provenance(
    sources: Mapping[str, Sequence[str]], lists: Sequence[tuple[np.ndarray, int]], seen: np.ndarray
) -> Provenance:
    """The provenance of the candidates `sources` holds (item -> the sources that proposed it, in
    pool order): their families' flags, and per ranked family (als, live, popular) its list as the
    source proposed it: the first n of (rows, n) that `seen` does not hold."""
    flags = np.zeros((len(sources), len(FAMILIES)), dtype=bool)
    family = FAMILY_OF.get
    for n, by in enumerate(sources.values()):
        for source in by:
            if (f := family(source)) is not None:
                flags[n, f] = True
    return Provenance(flags, [rows[outside(rows, seen)][:n] for rows, n in lists])
