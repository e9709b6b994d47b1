"""Candidate lists: top items per user by embedding score (unseen only), and popular lists,
global and per user cluster, by time-decayed engagement as of the as-of."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from batch.embeddings import ItemVectors, weight_col
from batch.vectors import top_n
from lambdastack.features import HALF_LIFE_MS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def user_candidates(spark: SparkSession, users: pd.DataFrame, vectors: ItemVectors, n: int) -> DataFrame:
    """users: user_id, v (combined vector), seen (item ids) -> user_id, items, scores."""
    matrix = spark.sparkContext.broadcast(vectors.combined.astype(np.float32))
    names = spark.sparkContext.broadcast(np.array(vectors.item_ids, dtype=object))
    index = spark.sparkContext.broadcast(vectors.index())

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        m, ids, idx = matrix.value, names.value, index.value
        for b in batches:
            q = np.vstack(b["v"].to_numpy()).astype(np.float32)
            bar = [np.array([idx[i] for i in seen if i in idx], dtype=np.int64) for seen in b["seen"]]
            top, sc = top_n(q, m, n, exclude=bar)
            keep = [np.isfinite(s) for s in sc]
            yield pd.DataFrame(
                {
                    "user_id": b["user_id"].to_numpy(),
                    "items": [list(ids[t][k]) for t, k in zip(top, keep, strict=True)],
                    "scores": [list(s[k].astype(float)) for s, k in zip(sc, keep, strict=True)],
                }
            )

    rows = pd.DataFrame(
        {
            "user_id": users["user_id"],
            "v": [list(map(float, v)) for v in users["v"]],
            "seen": [list(x) for x in users["seen"]],
        }
    )
    df = spark.createDataFrame(rows, "user_id string, v array<double>, seen array<string>")
    return (
        df.repartition(2)
        .mapInPandas(score, "user_id string, items array<string>, scores array<double>")
        .orderBy("user_id")
    )


def popular(events: DataFrame, user_clusters: DataFrame, as_of: int, n: int) -> DataFrame:
    """scope ('global' or 'cluster:K') -> items and scores, by decayed positive engagement."""
    from pyspark.sql import functions as F
    from pyspark.sql.window import Window

    decay = math.log(2) / HALF_LIFE_MS
    scored = events.select(
        "user_id",
        "item_id",
        (
            F.greatest(weight_col(), F.lit(0.0))
            * F.exp(-F.lit(decay) * (F.lit(as_of) - F.unix_millis("event_time")))
        ).alias("s"),
    )
    global_ = scored.groupBy("item_id").agg(F.sum("s").alias("score")).withColumn("scope", F.lit("global"))
    per_cluster = (
        scored.join(user_clusters, "user_id")
        .groupBy("cluster", "item_id")
        .agg(F.sum("s").alias("score"))
        .select(
            "item_id", "score", F.concat(F.lit("cluster:"), F.col("cluster").cast("string")).alias("scope")
        )
    )
    ranked = global_.unionByName(per_cluster).where("score > 0")
    w = Window.partitionBy("scope").orderBy(F.desc("score"), "item_id")
    top = ranked.withColumn("rank", F.row_number().over(w)).where(F.col("rank") <= n)
    return (
        top.groupBy("scope")
        .agg(F.sort_array(F.collect_list(F.struct("rank", "item_id", "score"))).alias("ranked"))
        .select("scope", F.col("ranked.item_id").alias("items"), F.col("ranked.score").alias("scores"))
        .orderBy("scope")
    )
