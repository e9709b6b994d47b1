"""Vectorised folds of user timelines: the same state and features as folding events one by one
through lambdastack.features.UserState, computed with numpy over many users at once.

The batch layer calls these on groups of users (Spark applyInPandas on a hash of the user id).
A unit test keeps them equal to the sequential definitions in lambdastack.features, which stay
the reference: the closed forms here are their algebraic rewrites.
- interest at t_ref = sum_j w_j v_j exp(-decay (t_ref - t_j)) over the events with a vector;
- prefix states (the training set) are exclusive cumulative sums within a user's timeline;
  the interest direction of a prefix is scale-free, so one per-user scale serves every prefix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lambdastack.features import DECAY_PER_MS, FEATURE_NAMES, ItemSide, event_weights


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


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    ok = (na > 0) & (nb > 0)
    return np.where(ok, np.einsum("ij,ij->i", a, b) / np.where(ok, na * nb, 1.0), 0.0)


def answer_queries(timeline: pd.DataFrame, side: SideArrays) -> pd.DataFrame:
    """Feature rows of the queries (kind 0) of user timelines that also hold their events (kind 1).

    Columns in: user_id, item_id, t, kind, type, value, label, cnt, event_id. A query sees the
    events strictly before it: at one instant, queries come before events (order t, kind, event_id).
    """
    tl = timeline.sort_values(["user_id", "t", "kind", "event_id"], kind="stable")
    if not len(tl):
        return pd.DataFrame(columns=["user_id", "item_id", "t", "label", *FEATURE_NAMES])
    line = _Timeline.of(tl, side)
    q = np.flatnonzero(~line.is_event)
    nq = _events_before(line)[q]
    item_vec = side.vectors[line.rows[q]]
    last_vec, hours = _last_event(line, side, q)
    feats = {
        "item_pop": np.log1p(np.maximum(tl["cnt"].to_numpy(dtype=np.float64)[q], 0.0)),
        "user_activity": np.log1p(nq.astype(np.float64)),
        "affinity": _cos(_interest_prefix(line, side)[q], item_vec),
        "genre_affinity": _genre_affinity(line, side, q, nq),
        "last_sim": _cos(last_vec, item_vec),
        "recency": np.log1p(hours),
    }
    out = pd.DataFrame(
        {
            "user_id": line.users[q].astype(str),
            "item_id": tl["item_id"].to_numpy(dtype=object)[q].astype(str),
            "t": line.t[q],
            "label": tl["label"].to_numpy(dtype=np.int64)[q],
        }
    )
    for name in FEATURE_NAMES:
        out[name] = feats[name].astype(np.float64)
    return out


@dataclass(frozen=True)
class _Timeline:
    """Non-empty user timelines sorted by (user, t, kind, event_id), as the arrays every fold reads."""

    frame: pd.DataFrame
    users: np.ndarray
    t: np.ndarray
    rows: np.ndarray  # each row's item in SideArrays
    is_event: np.ndarray
    starts: np.ndarray  # each user's first row
    seg: np.ndarray  # each row's user number
    first: np.ndarray  # each row's user's first row

    @classmethod
    def of(cls, tl: pd.DataFrame, side: SideArrays) -> _Timeline:
        users = tl["user_id"].to_numpy(dtype=object)
        starts, seg = _segments(users)
        t = tl["t"].to_numpy(dtype=np.int64)
        is_event = tl["kind"].to_numpy() == 1
        return cls(tl, users, t, side.rows(tl["item_id"]), is_event, starts, seg, starts[seg])


def _events_before(line: _Timeline) -> np.ndarray:
    """Per row, how many events of its user come before it."""
    counted = np.cumsum(line.is_event)
    before_start = np.where(line.first > 0, counted[line.first - 1], 0)
    return counted - line.is_event - before_start


def _interest_prefix(line: _Timeline, side: SideArrays) -> np.ndarray:
    """Per row, the interest of its user's events up to it, decayed to the user's last instant
    (a scale per user, not per prefix: only the direction is used)."""
    contributes = line.is_event & side.has_vector[line.rows]
    t_top = np.maximum.reduceat(line.t, line.starts)[line.seg]
    tl = line.frame
    w = event_weights(tl["type"].to_numpy(dtype=object), tl["value"].to_numpy(dtype=np.float64))
    decayed = np.where(contributes, w * np.exp(-DECAY_PER_MS * (t_top - line.t)), 0.0)
    terms = side.vectors[line.rows] * decayed[:, None]
    prefix = np.empty_like(terms)
    for s, e in zip(line.starts, np.r_[line.starts[1:], len(line.users)], strict=True):
        np.cumsum(terms[s:e], axis=0, out=prefix[s:e])
    return prefix


def _genre_affinity(line: _Timeline, side: SideArrays, q: np.ndarray, nq: np.ndarray) -> np.ndarray:
    """Per query row `q`: the user's earlier events' counts of the item's genres, over
    (item genres x events before)."""
    n, n_genres = len(line.users), max(len(side.genre_names), 1)
    owner, genre = _gather(side.genre_ptr, side.genre_ids, line.rows)
    of_event = line.is_event[owner]
    flat = owner[of_event] * n_genres + genre[of_event]
    per_genre = np.bincount(flat, minlength=n * n_genres).reshape(n, n_genres)
    per_genre = np.cumsum(per_genre, axis=0)
    per_genre -= np.where((line.first > 0)[:, None], per_genre[np.maximum(line.first - 1, 0)], 0)

    q_owner, q_genre = owner[~of_event], genre[~of_event]
    genre_hits = np.bincount(q_owner, weights=per_genre[q_owner, q_genre], minlength=n)[q]
    n_item_genres = (side.genre_ptr[line.rows + 1] - side.genre_ptr[line.rows])[q]
    return np.where((n_item_genres > 0) & (nq > 0), genre_hits / np.maximum(n_item_genres * nq, 1), 0.0)


def _last_event(line: _Timeline, side: SideArrays, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per query row `q`: the vector of the user's last earlier event (0 if none), and the hours since."""
    last = np.maximum.accumulate(np.where(line.is_event, np.arange(len(line.users)), -1))
    has_last = last >= line.first
    last_safe = np.maximum(last, 0)
    last_vec = np.where(has_last[q, None], side.vectors[line.rows[last_safe[q]]], 0.0)
    gap = line.t[q] - line.t[last_safe[q]]
    hours = np.where(has_last[q] & (gap > 0), gap / 3_600_000, 0.0)
    return last_vec, hours
