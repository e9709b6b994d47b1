"""The ranking model's training set, point-in-time correct, built on Spark.

Queries are a deterministic sample of the interactions in [train_from, as_of) (label: the
interaction was positive, lambdastack.features.is_positive) plus, for each, `negatives` items drawn
uniformly from the catalogue at the same instant (label 0). The features of a query at instant t
use only events strictly before t: item counts by a range window that ends 1 ms before t, user
state by replaying the user's events in time order (batch.user_folds, vectorised) and answering each
query before any event at its own instant. The feature code is lambdastack.features, the same
the API runs online.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from batch import user_folds
from batch.embeddings import weight_col
from batch.profiles import user_group
from batch.user_folds import SideArrays
from lambdastack.features import FEATURE_NAMES, ItemSide

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

TRAIN_SCHEMA = "user_id string, item_id string, t long, label int, " + ", ".join(
    f"{f} double" for f in FEATURE_NAMES
)


def training_set(
    spark: SparkSession,
    events: DataFrame,
    items: list[str],
    side: ItemSide,
    train_from: int,
    max_queries: int,
    negatives: int,
    seed: int = 7,
) -> pd.DataFrame:
    """Feature rows of sampled interactions and negatives; see the module docstring."""
    from pyspark.sql import functions as F

    ev = events.select(
        "event_id",
        "user_id",
        "item_id",
        "type",
        "value",
        F.unix_millis("event_time").alias("t"),
        weight_col().alias("w"),
    )
    window = ev.where(F.col("t") >= train_from)
    n = window.count()
    if n == 0:
        return pd.DataFrame(columns=["user_id", "item_id", "t", "label", *FEATURE_NAMES])
    positives = _sampled_positives(window, min(1.0, max_queries / n), seed)
    queries = positives.unionByName(_negatives(spark, positives, items, negatives, seed))
    timelines = _user_timelines(ev, queries, _item_counts_before(ev, queries))
    b_side = spark.sparkContext.broadcast(SideArrays.build(side))
    rows = timelines.groupBy(user_group()).applyInPandas(
        lambda p: user_folds.answer_queries(p, b_side.value), TRAIN_SCHEMA
    )
    out = rows.toPandas()
    return out.sort_values(["t", "user_id", "item_id", "label"], kind="stable").reset_index(drop=True)


def _sampled_positives(window: DataFrame, keep: float, seed: int) -> DataFrame:
    """A deterministic share `keep` of the interactions (by a hash of the event id) as queries."""
    from pyspark.sql import functions as F

    targets = window.where(
        F.pmod(F.xxhash64("event_id", F.lit(seed)), F.lit(1_000_000)) < int(keep * 1_000_000)
    )
    return targets.select(
        "user_id", "item_id", "t", (F.col("w") > 0).cast("int").alias("label"), F.col("event_id").alias("qid")
    )


def _negatives(
    spark: SparkSession, positives: DataFrame, items: list[str], negatives: int, seed: int
) -> DataFrame:
    """For each query, `negatives` catalogue items drawn by hash at its instant (label 0); a draw
    of the query's own item is dropped."""
    from pyspark.sql import functions as F

    catalogue = spark.createDataFrame(pd.DataFrame({"idx": range(len(items)), "neg_item": items}))
    draws = spark.range(negatives).withColumnRenamed("id", "k")
    return (
        positives.crossJoin(draws)
        .withColumn("idx", F.pmod(F.xxhash64("qid", "k", F.lit(seed)), F.lit(len(items))))
        .join(F.broadcast(catalogue), "idx")
        .where(F.col("neg_item") != F.col("item_id"))
        .select(
            "user_id",
            F.col("neg_item").alias("item_id"),
            "t",
            F.lit(0).alias("label"),
            F.concat_ws("#", "qid", "k").alias("qid"),
        )
    )


def _item_counts_before(ev: DataFrame, queries: DataFrame) -> DataFrame:
    """(qid, cnt): each query's item's event count strictly before the query's instant."""
    from pyspark.sql import functions as F
    from pyspark.sql.window import Window

    # real events count 1, queries 0, and the window ends at t - 1
    timeline = ev.select(
        "item_id", "t", F.lit(1).alias("real"), F.lit(None).cast("string").alias("qid")
    ).unionByName(queries.select("item_id", "t", F.lit(0).alias("real"), "qid"))
    before = Window.partitionBy("item_id").orderBy("t").rangeBetween(Window.unboundedPreceding, -1)
    return (
        timeline.withColumn("cnt", F.coalesce(F.sum("real").over(before), F.lit(0)))
        .where("real = 0")
        .select("qid", "cnt")
    )


def _user_timelines(ev: DataFrame, queries: DataFrame, counted: DataFrame) -> DataFrame:
    """The queries (kind 0) and all events (kind 1) of the queried users, in the columns
    batch.user_folds.answer_queries reads."""
    from pyspark.sql import functions as F

    q = queries.join(counted, "qid").select(
        "user_id",
        "item_id",
        "t",
        "label",
        "cnt",
        F.lit(0).alias("kind"),
        F.lit("").alias("type"),
        F.lit(0.0).alias("value"),
        F.col("qid").alias("event_id"),
    )
    e = ev.join(queries.select("user_id").distinct(), "user_id").select(
        "user_id",
        "item_id",
        "t",
        F.lit(0).alias("label"),
        F.lit(0).alias("cnt"),
        F.lit(1).alias("kind"),
        "type",
        "value",
        "event_id",
    )
    return q.unionByName(e)
