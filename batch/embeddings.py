"""Item embeddings on Spark: content vectors from item text (TF-IDF, randomly projected),
collaborative vectors from implicit-feedback ALS, combined into one unit vector per item
(item-item neighbours: batch/neighbours.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from batch.vectors import combine, normalize_rows
from lambdastack import features

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

CONTENT_DIM = 32
ALS_RANK = 16
SEED = 42


@dataclass(frozen=True)
class ItemVectors:
    """Row-aligned item ids, content vectors, combined vectors (unit norm)."""

    item_ids: list[str]
    content: np.ndarray
    combined: np.ndarray
    has_collab: np.ndarray

    def index(self) -> dict[str, int]:
        return {i: n for n, i in enumerate(self.item_ids)}


def weight_col() -> Column:
    """lambdastack.features.event_weight as a Spark expression, built from its definition there
    (TYPE_WEIGHTS and the watch and rating rules)."""
    from pyspark.sql import functions as F

    t, v = F.col("type"), F.col("value")
    watched = F.least(F.greatest(v, F.lit(0.0)), F.lit(features.WATCH_CAP_S))
    weight = F.when(t == "watch", 1.0 + watched / features.WATCH_S_PER_UNIT).when(
        t == "rating", v / features.RATING_MIDPOINT - 1.0
    )
    for etype, w in features.TYPE_WEIGHTS.items():
        weight = weight.when(t == etype, w)
    return weight.otherwise(features.OTHER_TYPE_WEIGHT)


def _tokens(catalogue: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    title = F.regexp_replace(F.lower(F.coalesce(F.col("title"), F.lit(""))), r"\(\d{4}\)", " ")
    words = F.filter(F.split(title, r"[^a-z0-9]+"), lambda w: F.length(w) > 2)
    genres = F.transform(
        F.coalesce(F.col("genres"), F.array().cast("array<string>")),
        lambda g: F.concat(F.lit("g:"), F.lower(g)),
    )
    tags = F.transform(
        F.coalesce(F.col("tags"), F.array().cast("array<string>")),
        lambda g: F.concat(F.lit("t:"), F.lower(g)),
    )
    return catalogue.select("item_id", F.concat(genres, tags, words).alias("tokens"))


def token_vector(token: str) -> np.ndarray:
    """A fixed random direction per token (seeded by the token): a random projection that keeps
    cosine similarities of TF-IDF vectors approximately, without a fitted model."""
    seed = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")
    return np.random.default_rng(seed).standard_normal(CONTENT_DIM) / np.sqrt(CONTENT_DIM)


def project(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """TF-IDF weights per item -> one dense content vector per item."""
    cache: dict[str, np.ndarray] = {}
    for b in batches:
        out = []
        for toks, ws in zip(b["toks"], b["ws"], strict=True):
            v = np.zeros(CONTENT_DIM)
            for tok, w in zip(toks if toks is not None else [], ws if ws is not None else [], strict=True):
                if tok not in cache:
                    cache[tok] = token_vector(tok)
                v += w * cache[tok]
            out.append(v.tolist())
        yield pd.DataFrame({"item_id": b["item_id"].to_numpy(), "v": out})


def content_vectors(catalogue: DataFrame) -> pd.DataFrame:
    """item_id -> content vector (CONTENT_DIM floats): TF-IDF of genres, tags and title words,
    randomly projected. Uses item text only."""
    from pyspark.sql import functions as F

    tokens = _tokens(catalogue)
    n_items = tokens.count()
    exploded = tokens.select("item_id", F.explode("tokens").alias("tok"))
    tf = exploded.groupBy("item_id", "tok").agg(F.count(F.lit(1)).alias("tf"))
    df = tf.groupBy("tok").agg(F.count(F.lit(1)).alias("df"))
    weights = (
        tf.join(df, "tok")
        .withColumn("w", F.col("tf") * F.log((F.lit(n_items) + 1) / (F.col("df") + 1)) + F.lit(1e-9))
        .groupBy("item_id")
        .agg(F.sort_array(F.collect_list(F.struct("tok", "w"))).alias("tw"))
        .select("item_id", F.col("tw.tok").alias("toks"), F.col("tw.w").alias("ws"))
    )
    every = tokens.select("item_id").join(weights, "item_id", "left")
    out = every.mapInPandas(project, "item_id string, v array<double>").toPandas()
    return out.sort_values("item_id", kind="stable").reset_index(drop=True)


def als_factors(spark: SparkSession, events: DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(item_id -> factors, user_id -> factors) of implicit-feedback ALS on positive weights."""
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import functions as F
    from pyspark.sql.window import Window

    pos = (
        events.withColumn("w", weight_col())
        .groupBy("user_id", "item_id")
        .agg(F.sum("w").alias("w"))
        .where("w > 0")
    )
    users = (
        pos.select("user_id").distinct().withColumn("u", F.row_number().over(Window.orderBy("user_id")) - 1)
    )
    items = (
        pos.select("item_id").distinct().withColumn("i", F.row_number().over(Window.orderBy("item_id")) - 1)
    )
    data = pos.join(users, "user_id").join(items, "item_id").select("u", "i", "w").cache()
    als = ALS(
        rank=ALS_RANK,
        maxIter=8,
        regParam=0.05,
        implicitPrefs=True,
        alpha=5.0,
        userCol="u",
        itemCol="i",
        ratingCol="w",
        seed=SEED,
        numUserBlocks=2,
        numItemBlocks=2,
        # the factor blocks fit in memory at every size this job targets; spilling them costs time
        intermediateStorageLevel="MEMORY_ONLY",
        finalStorageLevel="MEMORY_ONLY",
        coldStartStrategy="drop",
    )
    model = als.fit(data)
    item_f = model.itemFactors.join(items, model.itemFactors.id == items.i).select("item_id", "features")
    user_f = model.userFactors.join(users, model.userFactors.id == users.u).select("user_id", "features")
    out = (
        item_f.toPandas().sort_values("item_id").reset_index(drop=True),
        user_f.toPandas().sort_values("user_id").reset_index(drop=True),
    )
    data.unpersist()
    return out


def item_vectors(content: pd.DataFrame, item_als: pd.DataFrame) -> ItemVectors:
    """Combine content and ALS vectors for every item of the catalogue (content-only if cold)."""
    ids = list(content["item_id"])
    c = np.vstack(content["v"].to_numpy()) if len(content) else np.zeros((0, CONTENT_DIM))
    als = dict(zip(item_als["item_id"], item_als["features"], strict=True))
    a = np.zeros((len(ids), ALS_RANK))
    has = np.zeros(len(ids), dtype=bool)
    for n, i in enumerate(ids):
        f = als.get(i)
        if f is not None:
            a[n], has[n] = f, True
    return ItemVectors(ids, normalize_rows(c), combine(c, a, has), has)
