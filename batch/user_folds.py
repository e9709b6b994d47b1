"""Vectorised folds of user timelines: the same profile state as folding events one by one
through lambdastack.features.UserState, computed with numpy over many users at once.

The batch layer calls `profiles` on groups of users (Spark applyInPandas on a hash of the user
id). A unit test keeps it equal to the sequential definition in lambdastack.features, which stays
the reference: interest at t_ref = sum_j w_j v_j exp(-decay (t_ref - t_j)) over the events with
a vector is its algebraic rewrite.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lambdastack.features import DECAY_PER_MS, ItemSide, event_weights


@dataclass(frozen=True)
class SideArrays:
    """ItemSide (and tags) as arrays: row `len(item_ids)` is the unknown item (no vector, no genres)."""

    index: Mapping[str, int]
    vectors: np.ndarray
    has_vector: np.ndarray
    genre_names: list[str]
    genre_ptr: np.ndarray
    genre_ids: np.ndarray
    tag_names: list[str]
    tag_ptr: np.ndarray
    tag_ids: np.ndarray

    @classmethod
    def build(cls, side: ItemSide, tags: Mapping[str, Sequence[str]] | None = None) -> SideArrays:
        items = sorted(set(side.vectors) | set(side.genres) | set(tags or {}))
        dim = len(next(iter(side.vectors.values()))) if side.vectors else 1
        vectors = np.zeros((len(items) + 1, dim))
        has = np.zeros(len(items) + 1, dtype=bool)
        for i, item in enumerate(items):
            v = side.vectors.get(item)
            if v is not None:
                vectors[i], has[i] = v, True
        genre_names, genre_ptr, genre_ids = _csr(items, side.genres)
        tag_names, tag_ptr, tag_ids = _csr(items, tags or {})
        index = {item: i for i, item in enumerate(items)}
        return cls(index, vectors, has, genre_names, genre_ptr, genre_ids, tag_names, tag_ptr, tag_ids)

    def rows(self, item_ids: pd.Series) -> np.ndarray:
        unknown = len(self.has_vector) - 1
        return item_ids.map(self.index).fillna(unknown).to_numpy(dtype=np.int64)


def _csr(items: list[str], lists: Mapping[str, Sequence[str]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Names sorted (so id order is name order) and item -> ids as CSR, with an empty unknown row."""
    names = sorted({x for item in items for x in lists.get(item, ())})
    ids = {name: i for i, name in enumerate(names)}
    per_item = [[ids[x] for x in lists.get(item, ())] for item in items] + [
        []
    ]  # repeats count, as in UserState
    ptr = np.zeros(len(per_item) + 1, dtype=np.int64)
    ptr[1:] = np.cumsum([len(p) for p in per_item])
    flat = np.array([x for p in per_item for x in p], dtype=np.int64)
    return names, ptr, flat


def _gather(ptr: np.ndarray, ids: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position in `rows`, id) for every id listed for each row."""
    counts = ptr[rows + 1] - ptr[rows]
    owner = np.repeat(np.arange(len(rows)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner, ids[np.repeat(ptr[rows], counts) + offsets]


def _segments(users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start of each user's run in a user-sorted array, and each row's segment number."""
    change = np.r_[True, users[1:] != users[:-1]]
    return np.flatnonzero(change), np.cumsum(change) - 1


def _ranked(counts: np.ndarray, names: list[str], n: int) -> list[str]:
    """Names of the `n` largest counts, ties by name (ids are in name order)."""
    nz = np.flatnonzero(counts)
    order = nz[np.lexsort((nz, -counts[nz]))][:n]
    return [names[i] for i in order]


PROFILE_COLUMNS = [
    "user_id",
    "n",
    "interest",
    "t_ref",
    "genre_names",
    "genre_counts",
    "last_item",
    "last_t",
    "first_t",
    "active_days",
    "distinct_items",
    "top_genres",
    "top_tags",
]


def profiles(events: pd.DataFrame, side: SideArrays) -> pd.DataFrame:
    """One profile row per user of `events` (user_id, item_id, type, value, event_time_ms, event_id)."""
    ev = events.sort_values(["user_id", "event_time_ms", "event_id"], kind="stable")
    users = ev["user_id"].to_numpy(dtype=object)
    if not len(users):
        return pd.DataFrame(columns=PROFILE_COLUMNS)
    starts, seg = _segments(users)
    ends = np.r_[starts[1:], len(users)]
    t = ev["event_time_ms"].to_numpy(dtype=np.int64)
    rows = side.rows(ev["item_id"])
    with_vector = side.has_vector[rows]
    t_ref = np.maximum.reduceat(np.where(with_vector, t, np.iinfo(np.int64).min), starts)
    has_interest = np.add.reduceat(with_vector.astype(np.int64), starts) > 0
    t_ref = np.where(has_interest, t_ref, 0)
    w = event_weights(ev["type"].to_numpy(dtype=object), ev["value"].to_numpy(dtype=np.float64))
    with np.errstate(over="ignore"):
        scale = np.where(with_vector, w * np.exp(-DECAY_PER_MS * (t_ref[seg] - t)), 0.0)
    interest = np.add.reduceat(side.vectors[rows] * scale[:, None], starts, axis=0)

    n_users, n_genres = len(starts), len(side.genre_names)
    owner, genre = _gather(side.genre_ptr, side.genre_ids, rows)
    genre_counts = np.bincount(seg[owner] * n_genres + genre, minlength=n_users * n_genres).reshape(
        n_users, max(n_genres, 0)
    )
    owner, tag = _gather(side.tag_ptr, side.tag_ids, rows)
    tag_counts = pd.DataFrame({"seg": seg[owner], "tag": tag}).value_counts().reset_index(name="c")
    tag_counts = tag_counts.sort_values(["seg", "c", "tag"], ascending=[True, False, True], kind="stable")
    top_tags = tag_counts.groupby("seg").head(5).groupby("seg")["tag"].agg(list).to_dict()
    days = pd.DataFrame({"seg": seg, "d": np.floor_divide(t, 86_400_000)}).drop_duplicates()
    active_days = np.bincount(days["seg"].to_numpy(), minlength=n_users)
    items = pd.DataFrame({"seg": seg, "i": pd.factorize(ev["item_id"])[0]}).drop_duplicates()
    distinct = np.bincount(items["seg"].to_numpy(), minlength=n_users)
    item_ids = ev["item_id"].to_numpy(dtype=object)

    out = []
    for u, (s, e) in enumerate(zip(starts, ends, strict=True)):
        nz = np.flatnonzero(genre_counts[u]) if n_genres else np.array([], dtype=np.int64)
        out.append(
            [
                str(users[s]),
                int(e - s),
                interest[u].tolist() if has_interest[u] else None,
                int(t_ref[u]),
                [side.genre_names[g] for g in nz],
                [int(genre_counts[u, g]) for g in nz],
                str(item_ids[e - 1]),
                int(t[e - 1]),
                int(t[s]),
                int(active_days[u]),
                int(distinct[u]),
                _ranked(genre_counts[u], side.genre_names, 3) if n_genres else [],
                [side.tag_names[x] for x in top_tags.get(u, [])],
            ]
        )
    return pd.DataFrame(out, columns=PROFILE_COLUMNS)
