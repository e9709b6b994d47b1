"""The feed's candidate pool: candidates in the order the sources found them, each with the sources
that proposed it, bounded; the rule every source follows to enter it (serving.feed builds one per
request, and per version for a user's batch sources)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


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

    def add_unseen(self, items: Sequence[str], source: str) -> None:
        """`add(items, source, len(items))` for items none of which the user has seen (the
        neighbours' best_first excludes them already): no seen checks, and once the pool is full
        the rest only give the source to items in it."""
        sources, room = self.sources, self.limit - len(self.sources)
        for n, item in enumerate(items):
            srcs = sources.get(item)
            if srcs is None:
                if room <= 0:
                    for known in sources.keys() & set(items[n:]):
                        if source not in (srcs := sources[known]):
                            srcs.append(source)
                    return
                room -= 1
                sources[item] = [source]
            elif source not in srcs:
                srcs.append(source)

    def merge(self, proposed: Mapping[str, tuple[str, ...]]) -> None:
        """Add what several sources proposed, in order (BatchSide.proposed): the same pool as
        their `add` calls one after the other, for lists nothing in it has been seen from. Once
        the pool is full the rest can only add sources to items in it: those are looked up."""
        sources, limit = self.sources, self.limit
        for item, by in proposed.items():
            if len(sources) >= limit:
                break
            srcs = sources.setdefault(item, [])
            srcs.extend(s for s in by if s not in srcs)
        else:
            return
        for item, srcs in sources.items():
            srcs.extend(s for s in proposed.get(item, ()) if s not in srcs)
