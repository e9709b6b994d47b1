"""Item-item neighbours on Spark: collaborative neighbours from session co-visitation, content
neighbours for the items that have none.

The definition (fixed: it is not tuned per dataset):

- The events before the as-of except type 'skip'. Per user, ordered by (event_time, event_id)
  and numbered 0, 1, 2, ... (positions).
- Every pair of one user's events at positions p < q with q - p <= W (`batch.covisit_window`) and
  different items a, b adds 1/(q - p) to S(a, b) and to S(b, a). Summed over all users: S is
  symmetric.
- deg(a) = sum over b of S(a, b); score(a, b) = S(a, b) / sqrt(deg(a) * deg(b)).
- An item's neighbours: the n items b with the highest score(a, b), ties broken by item id
  ascending, fewer if it has fewer; kind 'covisit'.
- A catalogue item without any co-visitation neighbour: its n nearest other items by cosine of
  the content vectors (ties by item id), kind 'content'.

The view `item_neighbours`: item_id, neighbours (best first), scores (aligned), kind; one row per
catalogue item that has any neighbour.

Exact sums: a pair at gap d adds the integer L/d, with L = lcm(1..W), so L*S and L*deg are sums of
64-bit integers, the same whatever order Spark adds them in. A rerun publishes the same bytes, and
equal scores are equal doubles, so ties do break by id. L cancels in the score. With W at most
MAX_WINDOW an item's L*deg stays below 2^63 up to 4*10^7 of its events (each adds at most 2*L*H_W).

Cost: the self-join meets each event only with the W before it. Both sides carry a block number
(position div W); an event at q is matched against blocks q div W and q div W - 1, which hold every
position in q-W..q-1, so an event costs at most 2W comparisons however long its user's history is
(a join on the user alone compares every pair of a user's events: quadratic in the heaviest user).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from batch.vectors import top_n

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from batch.embeddings import ItemVectors

MAX_WINDOW = 25  # the exact-integer bound above; batch.covisit_window is validated against it
COVISIT, CONTENT = "covisit", "content"
SCHEMA = "item_id string, neighbours array<string>, scores array<double>, kind string"


def positions(events: DataFrame) -> DataFrame:
    """user_id, item_id, pos: each user's events except skips, numbered 0, 1, ... by
    (event_time, event_id)."""
    from pyspark.sql import functions as F
    from pyspark.sql.window import Window

    order = Window.partitionBy("user_id").orderBy("event_time", "event_id")
    return events.where(F.col("type") != "skip").select(
        "user_id", "item_id", (F.row_number().over(order) - 1).alias("pos")
    )


def covisitation(events: DataFrame, window: int) -> DataFrame:
    """a, b, s: L*S(a, b) as a long (L = lcm(1..window)), both orders of every pair with S > 0."""
    from pyspark.sql import functions as F

    if not 1 <= window <= MAX_WINDOW:
        raise ValueError(f"covisit window {window} is outside 1..{MAX_WINDOW}")
    scale = math.lcm(*range(1, window + 1))
    pos = positions(events)
    block = F.expr(f"pos div {window}")
    left = pos.select("user_id", block.alias("blk"), F.col("pos").alias("p"), F.col("item_id").alias("a"))
    right = pos.select(
        "user_id",
        F.explode(F.array(block, block - 1)).alias("blk"),
        F.col("pos").alias("q"),
        F.col("item_id").alias("b"),
    )
    gap = F.col("q") - F.col("p")
    near = (gap >= 1) & (gap <= window) & (F.col("a") != F.col("b"))
    pairs = left.join(right, ["user_id", "blk"]).where(near)
    half = pairs.groupBy(F.least("a", "b").alias("a"), F.greatest("a", "b").alias("b")).agg(
        F.sum(F.expr(f"{scale}L div (q - p)")).alias("s")
    )
    both = F.array(F.struct("a", "b", "s"), F.struct(F.col("b").alias("a"), F.col("a").alias("b"), "s"))
    return half.select(F.explode(both).alias("x")).select("x.*")


def covisit_neighbours(events: DataFrame, window: int, n: int) -> DataFrame:
    """The co-visitation neighbours of every item that has any (SCHEMA, kind 'covisit')."""
    from pyspark.sql import functions as F
    from pyspark.sql.window import Window

    s = covisitation(events, window)
    deg = s.groupBy("a").agg(F.sum("s").alias("deg"))
    scored = (
        s.join(deg, "a")
        .join(deg.select(F.col("a").alias("b"), F.col("deg").alias("deg_b")), "b")
        .select("a", "b", (F.col("s") / F.sqrt(F.col("deg").cast("double") * F.col("deg_b"))).alias("score"))
    )
    rank = F.row_number().over(Window.partitionBy("a").orderBy(F.desc("score"), "b"))
    best = scored.withColumn("rank", rank).where(F.col("rank") <= n)
    lists = best.groupBy("a").agg(F.sort_array(F.collect_list(F.struct("rank", "b", "score"))).alias("l"))
    return lists.select(
        F.col("a").alias("item_id"),
        F.col("l.b").alias("neighbours"),
        F.col("l.score").alias("scores"),
        F.lit(COVISIT).alias("kind"),
    )


def content_neighbours(spark: SparkSession, vectors: ItemVectors, rows: list[int], n: int) -> DataFrame:
    """For each of `rows` (indices into vectors), its n nearest other items by cosine of the
    content vectors (SCHEMA, kind 'content'), on the executors."""
    matrix = spark.sparkContext.broadcast(vectors.content.astype(np.float64))
    ids = spark.sparkContext.broadcast(np.array(vectors.item_ids, dtype=object))

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        m, names = matrix.value, ids.value
        for b in batches:
            r = b["row"].to_numpy()
            idx, sc = top_n(m[r], m, n + 1, exclude=[np.array([x]) for x in r])
            keep = [np.isfinite(s[:n]) for s in sc]  # the item itself is barred (-inf)
            yield pd.DataFrame(
                {
                    "item_id": names[r],
                    "neighbours": [list(names[i[:n]][k]) for i, k in zip(idx, keep, strict=True)],
                    "scores": [list(s[:n][k].astype(float)) for s, k in zip(sc, keep, strict=True)],
                    "kind": CONTENT,
                }
            )

    df = spark.createDataFrame(pd.DataFrame({"row": np.array(rows, dtype=np.int64)}), "row long")
    return df.repartition(2).mapInPandas(score, SCHEMA)


def item_neighbours(
    spark: SparkSession,
    events: DataFrame,
    vectors: ItemVectors,
    window: int,
    n: int,
    sink: Callable[[DataFrame], None],
) -> dict[str, int]:
    """Hand the view item_neighbours (SCHEMA, by item_id) to `sink`: co-visitation neighbours, and
    content neighbours for the catalogue items without any. Returns the item count of each kind."""
    covisit = covisit_neighbours(events, window, n).cache()
    try:
        have = {r["item_id"] for r in covisit.select("item_id").collect()}
        cold = [r for r, item in enumerate(vectors.item_ids) if item not in have]
        counts = {COVISIT: len(have), CONTENT: len(cold) if len(vectors.item_ids) > 1 else 0}
        view = covisit
        if counts[CONTENT]:  # most versions have none: no Python worker then
            view = covisit.unionByName(content_neighbours(spark, vectors, cold, n))
        sink(view.orderBy("item_id"))
        return counts
    finally:
        covisit.unpersist()
