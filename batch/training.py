"""The ranking model's training set: the feed's own candidate pool, point in time, built on Spark.

The set is a replay of the newest share of history, [train_from, as_of), against a "version" fitted
on the events before train_from, as the feed would see it if the batch had run at train_from:
- the version: item counts, first event times, co-visitation neighbours (batch.neighbours, the
  same definition), ALS factors (batch.embeddings, the same fit) and a popular list, all of events
  before train_from; item content vectors and genres as published;
- the live view: every event in [train_from, t), counted per item (`live_pop`) and ranked (the
  movers), as the feed reads them: the speed layer's live total since its version's as-of
  (`{p}:since:{as_of_ms}`), however long ago that was;
- a query: a positive interaction (u, i, t) in the window with an item u had not interacted with,
  sampled by a hash of its event id. Its pool, from u's events strictly before t: the best
  `knn_n` unseen items by kNN score over u's newest `recent_n` interactions (lambdastack.retrieval),
  the best `als_n` unseen items by ALS score (users the version knows), the `movers_n` top live
  items, the `popular_n` top popular items, and `negatives` random items, all unseen. The
  engaged item is the positive (label 1) and every other pool item a negative;
  a query whose item is not in its pool is left out (the ranker only orders what retrieval finds)
  and counted.
Features are lambdastack.candidate_features.feature_matrix, the API's own function, over the user
state folded event by event (lambdastack.features, the reference fold).
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lambdastack.candidate_features import feature_matrix
from lambdastack.features import FEATURE_NAMES, ItemSide, UserState
from lambdastack.item_matrix import ItemMatrix
from lambdastack.retrieval import NeighbourIndex, outside, sequence_evidence
from lambdastack.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from batch.embeddings import ItemVectors

COLUMNS = ["qid", "user_id", "item_id", "t", "label", *FEATURE_NAMES]
TRAIN_SCHEMA = "qid string, user_id string, item_id string, t long, label int, " + ", ".join(
    f"{f} double" for f in FEATURE_NAMES
)


@dataclass(frozen=True)
class PoolConfig:
    """How a query's pool is drawn (the feed's sources and sizes, from conf/)."""

    knn_n: int
    recent_n: int
    decay: float
    movers_n: int
    popular_n: int
    negatives: int
    session_ms: int = 1_800_000
    als_n: int = 0
    seed: int = 7

    @staticmethod
    def from_settings(settings: Settings) -> PoolConfig:
        """As the feed draws its candidates: its sources' sizes and its kNN sequence (serving
        settings), plus the batch's random negatives."""
        b, s = settings.batch, settings.serving
        return PoolConfig(
            knn_n=s.knn_candidates_n,
            recent_n=s.knn_recent_n,
            decay=s.knn_decay,
            movers_n=s.speed_movers_n,
            popular_n=s.feed_k_default,
            negatives=b.train_negatives,
            session_ms=s.knn_session_s * 1000,
            als_n=s.als_candidates_n,
        )


@dataclass(frozen=True)
class TrainingContext:
    """The version as of train_from and the live events after it (broadcast to every task)."""

    matrix: ItemMatrix  # counts: events before train_from
    knn: NeighbourIndex
    popular: np.ndarray  # rows, most events before train_from first
    live_t: np.ndarray  # live events' times, ascending
    live_rows: np.ndarray  # their item rows, aligned
    live_keys: np.ndarray  # row * span + (t - train_from), ascending: per-item counts by search
    span: int
    train_from: int
    cfg: PoolConfig
    user_als: Mapping[str, np.ndarray]  # users' ALS factors of the events before train_from

    @staticmethod
    def build(
        side: ItemSide,
        counts: Mapping[str, int],
        neighbours: Mapping[str, Sequence[str]],
        scores: Mapping[str, Sequence[float]],
        live_items: Sequence[str],
        live_t: np.ndarray,
        train_from: int,
        cfg: PoolConfig,
        user_als: Mapping[str, np.ndarray] | None = None,
    ) -> TrainingContext:
        """`side` with the ALS factors and first event times of the events before train_from."""
        matrix = ItemMatrix.build(side, counts)
        knn = NeighbourIndex.build(matrix.index, neighbours, scores)
        n_items = len(matrix.ids)
        popular = np.lexsort((np.arange(n_items), -matrix.counts[:n_items]))
        popular = popular[matrix.counts[popular] > 0]
        order = np.argsort(live_t, kind="stable")
        t, rows = np.asarray(live_t, dtype=np.int64)[order], matrix.rows(list(live_items))[order]
        span = int(t.max() - train_from + 2) if len(t) else 1
        keys = np.sort(rows * span + (t - train_from))
        return TrainingContext(matrix, knn, popular, t, rows, keys, span, train_from, cfg, user_als or {})

    def live_counts(self, rows: np.ndarray, lo: int, t: int) -> np.ndarray:
        """Live events of each row in [lo, t)."""
        base = rows * self.span - self.train_from
        return np.searchsorted(self.live_keys, base + t) - np.searchsorted(self.live_keys, base + lo)

    def movers(self, lo: int, t: int, n: int, seen: np.ndarray) -> np.ndarray:
        """The n unseen rows with the most live events in [lo, t) (ties: the lower row)."""
        a, b = np.searchsorted(self.live_t, [lo, t])
        rows, counts = np.unique(self.live_rows[a:b], return_counts=True)
        keep = outside(rows, seen)
        rows, counts = rows[keep], counts[keep]
        return rows[np.lexsort((rows, -counts))][:n]


def _unseen_head(rows: np.ndarray, seen: np.ndarray, n: int) -> np.ndarray:
    return rows[outside(rows, seen)][:n]


def _pool(
    ctx: TrainingContext,
    state: UserState,
    evidence_rows: np.ndarray,
    seen: np.ndarray,
    lo: int,
    t: int,
    rng: np.random.Generator,
) -> np.ndarray:
    cfg = ctx.cfg
    parts = [
        evidence_rows,
        ctx.matrix.als_best(state.als, cfg.als_n, seen),
        ctx.movers(lo, t, cfg.movers_n, seen),
        _unseen_head(ctx.popular[: cfg.popular_n + len(seen)], seen, cfg.popular_n),
        _unseen_head(rng.integers(0, len(ctx.matrix.ids), cfg.negatives * 2), seen, cfg.negatives),
    ]
    return np.unique(np.concatenate(parts)) if any(len(p) for p in parts) else parts[0]


def answer_user_queries(frame: pd.DataFrame, ctx: TrainingContext, side: ItemSide) -> pd.DataFrame:
    """Pool rows of the queries of some users. Columns in: user_id, item_id, type, value, t,
    event_id, query (1: the event is a query). A query sees the user's events strictly before it."""
    cfg = ctx.cfg
    frame = frame.sort_values(["user_id", "t", "event_id"], kind="stable")
    out: list[pd.DataFrame] = []
    matrix = ctx.matrix
    for user, ev in frame.groupby("user_id", sort=False):
        state = UserState(als=ctx.user_als.get(str(user)))
        recent: deque[tuple[int, int]] = deque(maxlen=cfg.recent_n)  # (row, t), newest first
        seen: dict[int, None] = {}
        rows = matrix.rows(ev["item_id"].tolist())
        items, types = ev["item_id"].to_numpy(dtype=object), ev["type"].to_numpy(dtype=object)
        values, times = ev["value"].to_numpy(dtype=np.float64), ev["t"].to_numpy(dtype=np.int64)
        queries, ids = ev["query"].to_numpy(), ev["event_id"].to_numpy(dtype=object)
        for n in range(len(ev)):
            t, row = int(times[n]), int(rows[n])
            if queries[n] and row not in seen and row < len(matrix.ids):
                answered = _answer(ctx, state, recent, seen, t, row, str(ids[n]))
                if answered is not None:
                    answered.insert(1, "user_id", str(user))
                    out.append(answered)
            side.apply(state, str(items[n]), t, str(types[n]), float(values[n]))
            recent.appendleft((row, t))
            seen[row] = None
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=COLUMNS)


def _answer(
    ctx: TrainingContext,
    state: UserState,
    recent: deque[tuple[int, int]],
    seen_rows: Mapping[int, None],
    t: int,
    target: int,
    qid: str,
) -> pd.DataFrame | None:
    cfg, matrix = ctx.cfg, ctx.matrix
    seen = np.fromiter(seen_rows, dtype=np.int64, count=len(seen_rows))
    seq = np.fromiter((r for r, _ in recent), dtype=np.int64, count=len(recent))
    # the session: the interactions since train_from (the "as-of") within the session span
    start = max(ctx.train_from, t - cfg.session_ms)
    now = np.fromiter((r for r, at in recent if at >= start), dtype=np.int64)
    evidence, session = sequence_evidence(ctx.knn, seq, now, cfg.decay)
    lo = ctx.train_from  # the live view: every event since the "as-of"
    rng = np.random.default_rng([cfg.seed, zlib.crc32(qid.encode())])
    pool = _pool(ctx, state, evidence.best_first(cfg.knn_n, seen), seen, lo, t, rng)
    if target not in set(pool.tolist()):
        return None
    # what the serving views would hold: the version's counts plus the live ones since train_from
    live = ctx.live_counts(pool, lo, t)
    total = matrix.counts[pool] + live
    x = feature_matrix(matrix, state, pool, total, live, evidence, seen, t, session)
    answered = pd.DataFrame(x, columns=list(FEATURE_NAMES))
    answered.insert(0, "qid", qid)
    answered.insert(1, "item_id", [matrix.ids[r] for r in pool.tolist()])
    answered.insert(2, "t", t)
    answered.insert(3, "label", (pool == target).astype(np.int64))
    return answered


@dataclass(frozen=True)
class TrainingSet:
    rows: pd.DataFrame  # COLUMNS, by (t, qid, item_id)
    sampled: int  # positive interactions sampled as queries
    answered: int  # queries whose item was in their pool (the others are left out)


def training_set(
    spark: SparkSession,
    events: DataFrame,
    vectors: ItemVectors,
    side: ItemSide,
    train_from: int,
    max_queries: int,
    cfg: PoolConfig,
    covisit_window: int,
    neighbours_n: int,
) -> TrainingSet:
    """The pool rows of sampled queries in [train_from, as_of); see the module docstring."""
    from pyspark.sql import functions as F

    from batch.embeddings import weight_col
    from batch.profiles import user_group

    ev = events.select(
        "event_id", "user_id", "item_id", "type", "value", F.unix_millis("event_time").alias("t")
    ).withColumn("w", weight_col())
    ctx = _context(spark, events, ev, vectors, side, train_from, cfg, covisit_window, neighbours_n)
    window = ev.where((F.col("t") >= train_from) & (F.col("w") > 0))
    n = window.count()
    if n == 0:
        return TrainingSet(pd.DataFrame(columns=COLUMNS), 0, 0)
    keep = int(min(1.0, max_queries / n) * 1_000_000)
    queries = window.where(F.pmod(F.xxhash64("event_id", F.lit(cfg.seed)), F.lit(1_000_000)) < keep)
    queries = queries.select("event_id", F.lit(1).alias("query")).cache()
    sampled = queries.count()
    users = ev.join(queries, "event_id").select("user_id").distinct()
    timelines = (
        ev.join(users, "user_id")
        .join(queries, "event_id", "left")
        .select(
            "user_id",
            "item_id",
            "type",
            "value",
            "t",
            "event_id",
            F.coalesce("query", F.lit(0)).alias("query"),
        )
    )
    b_ctx, b_side = spark.sparkContext.broadcast(ctx), spark.sparkContext.broadcast(side)
    rows = timelines.groupBy(user_group()).applyInPandas(
        lambda p: answer_user_queries(p, b_ctx.value, b_side.value), TRAIN_SCHEMA
    )
    out = rows.toPandas().sort_values(["t", "qid", "item_id"], kind="stable").reset_index(drop=True)
    queries.unpersist()
    return TrainingSet(out, sampled, int(out["qid"].nunique()))


def _context(
    spark: SparkSession,
    events: DataFrame,
    ev: DataFrame,
    vectors: ItemVectors,
    side: ItemSide,
    train_from: int,
    cfg: PoolConfig,
    covisit_window: int,
    neighbours_n: int,
) -> TrainingContext:
    """The version as of train_from (counts and neighbours of the events before it) and the live
    events after it."""
    from pyspark.sql import functions as F

    from batch.embeddings import als_factors
    from batch.neighbours import item_neighbours

    before = events.where(F.unix_millis("event_time") < train_from)
    stats = before.groupBy("item_id").agg(
        F.count(F.lit(1)).alias("count"), F.min(F.unix_millis("event_time")).alias("first")
    )
    counts = stats.toPandas()
    item_als: dict[str, np.ndarray] = {}
    user_als: dict[str, np.ndarray] = {}
    if cfg.als_n:
        items_f, users_f = als_factors(spark, before)
        item_als, user_als = _factors(items_f, "item_id"), _factors(users_f, "user_id")
    fitted: list[pd.DataFrame] = []
    item_neighbours(
        spark, before, vectors, covisit_window, neighbours_n, lambda v: fitted.append(v.toPandas())
    )
    lists = fitted[0]
    live = ev.where(F.col("t") >= train_from).select("item_id", "t").toPandas()
    side = replace(
        side,
        als=item_als,
        first_ms=dict(zip(counts["item_id"], counts["first"].astype(int), strict=True)),
    )
    return TrainingContext.build(
        side,
        dict(zip(counts["item_id"], counts["count"].astype(int), strict=True)),
        dict(zip(lists["item_id"], (tuple(x) for x in lists["neighbours"]), strict=True)),
        dict(zip(lists["item_id"], (tuple(x) for x in lists["scores"]), strict=True)),
        live["item_id"].tolist(),
        live["t"].to_numpy(dtype=np.int64),
        train_from,
        cfg,
        user_als,
    )


def _factors(frame: pd.DataFrame, key: str) -> dict[str, np.ndarray]:
    pairs = zip(frame[key], frame["features"], strict=True)
    return {str(k): np.asarray(f, dtype=np.float64) for k, f in pairs}
