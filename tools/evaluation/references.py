"""Reference recommenders the replay measures the product against, kept out of the product.

Both rank the whole catalogue under the replay's protocol (tools.evaluation.replay): asked for
user u's rank of a target at t, with every item u interacted with before t masked, ties counted
against the target (tools.evaluation.metrics). Each is told every replayed event after it was
asked about it (`apply`), as the speed layer would be.

- `RecentPopular`: items by their number of events since the as-of (the replayed events so far).
- `ItemKnn`: item-item cosine on the binary user x item matrix of the history before the cut;
  u's score for item i is sum_j w_j cos(j, i) over u's last `n_recent` interactions j (history
  and replayed events alike), newest weight 1, each older one times `decay`.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Collection, Iterable, Sequence
from typing import Protocol

import numpy as np

from lambdastack.events import Event

REFERENCES = ("recent_popular", "item_knn")  # the names of RecentPopular and ItemKnn


def pessimistic_rank(scores: np.ndarray, target: int, masked: np.ndarray) -> int:
    """0-based rank of `target`: the other unmasked items scoring at least as high."""
    keep = np.ones(scores.shape[0], dtype=bool)
    keep[masked] = False
    keep[target] = False
    return int(np.count_nonzero(scores[keep] >= scores[target]))


def top_k(scores: np.ndarray, masked: np.ndarray, k: int) -> np.ndarray:
    """The k best unmasked item numbers, best first (ties: the lower number first)."""
    s = scores.astype(np.float64, copy=True)
    s[masked] = -np.inf
    k = min(k, s.shape[0])
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-s, k - 1)[:k] if k < s.shape[0] else np.arange(s.shape[0])
    best = part[np.lexsort((part, -s[part]))]
    return best[np.isfinite(s[best])]


class Reference(Protocol):
    """What the replay asks of a reference recommender."""

    name: str
    catalogue: _Catalogue

    def scores(self, user_id: str) -> np.ndarray: ...

    def apply(self, e: Event) -> None: ...


def answer(ref: Reference, user_id: str, target: str, seen: Collection[str], k: int) -> tuple[int, list[str]]:
    """(the target's pessimistic rank over the whole catalogue, the user's top k item ids)."""
    t = ref.catalogue.number(target)
    names = ref.catalogue.names()
    scores = ref.scores(user_id)
    # items numbered after the scores were sized (new targets) score 0, like every unseen item
    scores = np.concatenate([scores, np.zeros(len(names) - scores.shape[0])])
    masked = ref.catalogue.numbers(seen)
    return pessimistic_rank(scores, t, masked), [names[i] for i in top_k(scores, masked, k).tolist()]


class _Catalogue:
    """Item ids to dense numbers, growing as new items appear."""

    def __init__(self, items: Iterable[str] = ()):
        self.index: dict[str, int] = {}
        self._names: list[str] = []
        for i in items:
            self.number(i)

    def number(self, item_id: str) -> int:
        n = self.index.setdefault(item_id, len(self.index))
        if n == len(self._names):
            self._names.append(item_id)
        return n

    def names(self) -> list[str]:
        """Item ids by number."""
        return self._names

    def numbers(self, item_ids: Collection[str]) -> np.ndarray:
        return np.fromiter((self.index[i] for i in item_ids if i in self.index), dtype=np.int64)


class RecentPopular:
    """Items by count of events since the as-of."""

    name = "recent_popular"

    def __init__(self, catalogue: Iterable[str] = ()):
        self.catalogue = _Catalogue(catalogue)
        self.counts = np.zeros(max(len(self.catalogue.index), 1), dtype=np.float64)

    def scores(self, user_id: str) -> np.ndarray:
        return self.counts[: len(self.catalogue.index)].copy()

    def rank(self, user_id: str, target: str, seen: Collection[str]) -> int:
        return answer(self, user_id, target, seen, 0)[0]

    def apply(self, e: Event) -> None:
        i = self.catalogue.number(e.item_id)
        if i >= self.counts.shape[0]:
            self.counts = np.concatenate([self.counts, np.zeros(max(i + 1 - self.counts.shape[0], 1024))])
        self.counts[i] += 1.0


class ItemKnn:
    """Decayed sum of item-item cosines over the user's last interactions."""

    name = "item_knn"

    def __init__(self, history: Sequence[Event], n_recent: int = 20, decay: float = 0.9):
        self.n_recent, self.decay = n_recent, decay
        self.catalogue = _Catalogue(e.item_id for e in history)
        users = _Catalogue(e.user_id for e in history)
        pairs = {(users.index[e.user_id], self.catalogue.index[e.item_id]) for e in history}
        rows = np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)
        self.pair_user, self.pair_item = rows[:, 0], rows[:, 1]
        self.n_users, self.n_items = len(users.index), len(self.catalogue.index)
        self.norms = np.sqrt(np.bincount(self.pair_item, minlength=self.n_items).astype(np.float64))
        self._users_of = _group(self.pair_item, self.pair_user, self.n_items)
        self.recent: dict[str, deque[str]] = defaultdict(lambda: deque(maxlen=n_recent))
        for e in history:
            self.recent[e.user_id].append(e.item_id)

    def scores(self, user_id: str) -> np.ndarray:
        """The user's score for every history item (zero for items the history never saw)."""
        weights = np.zeros(self.n_users)
        w = 1.0
        for item in reversed(self.recent.get(user_id, ())):
            j = self.catalogue.index.get(item, -1)
            if 0 <= j < self.n_items and self.norms[j] > 0:
                weights[self._users_of[j]] += w / self.norms[j]
            w *= self.decay
        dots = np.bincount(self.pair_item, weights=weights[self.pair_user], minlength=self.n_items)
        return np.divide(dots, self.norms, out=np.zeros(self.n_items), where=self.norms > 0)

    def rank(self, user_id: str, target: str, seen: Collection[str]) -> int:
        return answer(self, user_id, target, seen, 0)[0]

    def apply(self, e: Event) -> None:
        self.recent[e.user_id].append(e.item_id)


def _group(keys: np.ndarray, values: np.ndarray, n_keys: int) -> list[np.ndarray]:
    """values grouped by key (keys in 0..n_keys-1)."""
    order = np.argsort(keys, kind="stable")
    bounds = np.searchsorted(keys[order], np.arange(n_keys + 1))
    return [values[order[bounds[k] : bounds[k + 1]]] for k in range(n_keys)]
