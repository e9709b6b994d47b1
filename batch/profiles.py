"""User profiles on Spark: the replayed feature state as of the as-of (lambdastack.features),
ALS factors, top genres and tags, activity statistics, and a k-means cluster for cold start."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pandas as pd

from lambdastack.features import ItemSide, UserState

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

PROFILE_SCHEMA = (
    "user_id string, n long, interest array<double>, t_ref long, genre_names array<string>, "
    "genre_counts array<long>, last_item string, last_t long, first_t long, active_days long, "
    "distinct_items long, top_genres array<string>, top_tags array<string>"
)
EVENT_ORDER = ["event_time_ms", "event_id"]


def replay(events: pd.DataFrame, side: ItemSide) -> UserState:
    """Fold one user's events (any order) into a UserState, in time order."""
    state = UserState()
    ordered = events.sort_values(EVENT_ORDER, kind="stable")
    for item, t, etype, value in zip(
        ordered["item_id"], ordered["event_time_ms"], ordered["type"], ordered["value"], strict=True
    ):
        side.apply(state, str(item), int(t), str(etype), float(value))
    return state


def profile_row(
    user_id: str, events: pd.DataFrame, side: ItemSide, tags: Mapping[str, Sequence[str]]
) -> dict:
    state = replay(events, side)
    tag_counts: Counter[str] = Counter()
    for item in events["item_id"]:
        tag_counts.update(tags.get(str(item), ()))
    genres = sorted(state.genres.items())
    days = pd.to_datetime(events["event_time_ms"], unit="ms").dt.floor("D").nunique()
    return {
        "user_id": user_id,
        "n": state.n,
        "interest": None if state.interest is None else state.interest.tolist(),
        "t_ref": state.t_ref,
        "genre_names": [g for g, _ in genres],
        "genre_counts": [c for _, c in genres],
        "last_item": state.last_item,
        "last_t": state.last_t,
        "first_t": int(events["event_time_ms"].min()),
        "active_days": int(days),
        "distinct_items": int(events["item_id"].nunique()),
        "top_genres": [g for g, _ in sorted(state.genres.items(), key=lambda x: (-x[1], x[0]))[:3]],
        "top_tags": [t for t, _ in sorted(tag_counts.items(), key=lambda x: (-x[1], x[0]))[:5]],
    }


def profiles(
    spark: SparkSession, events: DataFrame, side: ItemSide, tags: Mapping[str, Sequence[str]]
) -> DataFrame:
    """One profile row per user, replayed on the executors."""
    from pyspark.sql import functions as F

    b_side = spark.sparkContext.broadcast(side)
    b_tags = spark.sparkContext.broadcast(dict(tags))

    def per_user(pdf: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame([profile_row(str(pdf["user_id"].iloc[0]), pdf, b_side.value, b_tags.value)])

    cols = events.select(
        "user_id", "item_id", "type", "value", "event_id", F.unix_millis("event_time").alias("event_time_ms")
    )
    return cols.groupBy("user_id").applyInPandas(per_user, PROFILE_SCHEMA)


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
