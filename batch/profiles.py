"""User profiles on Spark: the replayed feature state as of the as-of (lambdastack.features),
ALS factors, top genres and tags, activity statistics, and a k-means cluster for cold start."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pandas as pd

from batch import user_folds
from batch.user_folds import SideArrays
from lambdastack.features import ItemSide

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

PROFILE_SCHEMA = (
    "user_id string, n long, interest array<double>, t_ref long, genre_names array<string>, "
    "genre_counts array<long>, last_item string, last_t long, first_t long, active_days long, "
    "distinct_items long, top_genres array<string>, top_tags array<string>"
)
USER_GROUPS = 32  # users are hashed into this many groups; each group is replayed vectorised


def user_group() -> Column:
    """A stable hash group of the user id: whole user timelines stay in one pandas frame."""
    from pyspark.sql import functions as F

    return F.pmod(F.xxhash64("user_id"), F.lit(USER_GROUPS)).alias("user_group")


def profiles(
    spark: SparkSession, events: DataFrame, side: ItemSide, tags: Mapping[str, Sequence[str]]
) -> DataFrame:
    """One profile row per user (batch.user_folds.profiles), replayed on the executors."""
    from pyspark.sql import functions as F

    b_side = spark.sparkContext.broadcast(SideArrays.build(side, tags))

    def per_group(pdf: pd.DataFrame) -> pd.DataFrame:
        return user_folds.profiles(pdf, b_side.value)

    cols = events.select(
        "user_id", "item_id", "type", "value", "event_id", F.unix_millis("event_time").alias("event_time_ms")
    )
    return cols.groupBy(user_group()).applyInPandas(per_group, PROFILE_SCHEMA)


def clusters(spark: SparkSession, user_vectors: pd.DataFrame, k: int) -> pd.DataFrame:
    """user_id -> cluster (k-means on the users' combined vectors, Spark MLlib)."""
    from pyspark.ml.clustering import KMeans
    from pyspark.ml.functions import array_to_vector

    rows = pd.DataFrame(
        {"user_id": user_vectors["user_id"], "v": [list(map(float, v)) for v in user_vectors["v"]]}
    )
    df = spark.createDataFrame(rows, "user_id string, v array<double>").select(
        "user_id", array_to_vector("v").alias("x")
    )
    k = max(1, min(k, len(user_vectors)))
    model = KMeans(k=k, seed=1, featuresCol="x", predictionCol="cluster", maxIter=20).fit(df)
    out = model.transform(df).select("user_id", "cluster").toPandas()
    return out.sort_values("user_id").reset_index(drop=True)
