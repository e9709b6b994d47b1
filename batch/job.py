"""`lambdastack batch run`: master dataset -> views, embeddings, neighbours, profiles, candidates,
ranking model -> a new published version.

`run` reads as the protocol: read the events before the as-of, then each step writes its views
into a locked staging directory (aggregates, embeddings, neighbours, profiles, candidates, model),
then the manifest is built and `batch.publish.publish` turns the staging directory into the next version
(batch/publish.py states the protocol)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lambdastack import __version__, feature_baseline
from lambdastack.errors import DataError
from lambdastack.features import FEATURE_NAMES, ItemSide
from lambdastack.keys import bucket_start
from lambdastack.settings import Settings
from lambdastack.versions import MODEL_FILE, VIEW_SCHEMA_VERSION, VersionLayout

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from batch.embeddings import ItemVectors
    from batch.ranker import TrainedRanker


VIEWS = {
    "item_stats",
    "user_history",
    "items",
    "item_embeddings",
    "item_neighbours",
    "user_profiles",
    "candidates",
    "popular",
    "model",
}


def aligned_as_of(as_of_ms: int | None, bucket_s: int) -> int:
    """The as-of instant, floored to a bucket start (the speed layer's merge contract)."""
    now = int(time.time() * 1000) if as_of_ms is None else as_of_ms
    return bucket_start(now, bucket_s)


def _check_master(master: Path) -> None:
    if not master.is_dir():
        raise DataError(
            f"the master dataset {master} does not exist; load data first "
            "(`lambdastack data load movielens DIR` or `lambdastack data generate`)"
        )
    if not any(master.glob("event_date=*/*.parquet")):
        raise DataError(f"the master dataset {master} holds no events; load data first")


class _Progress:
    def __init__(self, echo: Callable[[str], None]):
        self.echo, self.start, self.last = echo, time.monotonic(), time.monotonic()
        self.stages: dict[str, float] = {}

    def __call__(self, name: str, msg: str) -> None:
        now = time.monotonic()
        self.stages[name] = round(now - self.last, 3)
        self.echo(f"[batch {now - self.start:6.1f}s] {msg} (+{now - self.last:.1f}s)")
        self.last = now


def _write(table: pd.DataFrame | pa.Table, path: Path) -> int:
    path.mkdir(parents=True, exist_ok=True)
    t = table if isinstance(table, pa.Table) else pa.Table.from_pandas(table, preserve_index=False)
    pq.write_table(t, path / "part-0.parquet", compression="zstd")
    return t.num_rows


def _read_events(spark: Any, master: Path, as_of: int) -> DataFrame:
    from batch.views import events_before

    raw = spark.read.option("basePath", str(master)).parquet(str(master / "event_date=*"))
    missing = {"event_id", "user_id", "item_id", "type", "value", "event_time"} - set(raw.columns)
    if missing:
        raise DataError(
            f"the master dataset {master} does not match the event schema: missing {sorted(missing)}"
        )
    return events_before(raw, as_of)


@dataclass
class _Staging:
    """What every step of a run writes to: the Spark session, the staging directory, the row
    count of each view, the progress log."""

    spark: Any
    dir: Path
    progress: _Progress
    rows: dict[str, int] = field(default_factory=dict)

    def spark_view(self, name: str, df: DataFrame) -> None:
        df.coalesce(1).write.parquet(str(self.dir / name))


def run(
    settings: Settings,
    as_of_ms: int | None = None,
    master_url: str | None = None,
    echo: Callable[[str], None] = print,
) -> str:
    """Compute every view as of an instant and publish them; returns the new version id."""
    from batch.publish import clean_stale_staging, open_staging, publish
    from batch.session import spark_session

    b = settings.batch
    master = settings.path(settings.data.master_dir)
    layout = VersionLayout(settings.path(settings.data.views_dir))
    _check_master(master)
    as_of = aligned_as_of(as_of_ms, b.bucket_s)
    progress = _Progress(echo)
    progress("start", f"starting Spark ({master_url or b.spark_master})")
    spark = spark_session(settings, master_url)
    clean_stale_staging(layout)
    staging_dir, lock = open_staging(layout, uuid.uuid4().hex[:12])
    st = _Staging(spark, staging_dir, progress)

    events, n_events = _events(st, master, as_of)
    catalogue = settings.path(settings.data.catalogue_dir)
    history, items = _aggregates(st, events, catalogue, as_of, b.recent_items_n)
    vectors, user_als = _embeddings(st, events, items)
    _neighbours(st, events, vectors, b.covisit_window, b.neighbours_n)
    side, tags = _item_side(items, vectors)
    prof = _profiles(st, events, side, tags, user_als, b.clusters)
    _candidates(st, events, history, prof, vectors, as_of, settings)
    trained, training_data = _model(st, events, vectors, side, settings)

    manifest = _manifest(st, events, n_events, as_of, settings, trained, training_data)
    events.unpersist()
    vid = publish(layout, st.dir, manifest, b.keep_versions, expected=VIEWS)
    lock.close()
    progress("publish", f"published {vid} (as-of {as_of})")
    return vid


def _events(st: _Staging, master: Path, as_of: int) -> tuple[DataFrame, int]:
    """The events before the as-of (cached: every step reads them) and their count."""
    events = _read_events(st.spark, master, as_of).cache()
    n_events = events.count()
    if n_events == 0:
        raise DataError(f"the master dataset {master} has no event before the as-of {as_of} ms")
    st.progress("read", f"read {n_events} events before as-of {as_of}")
    return events, n_events


def _aggregates(
    st: _Staging, events: DataFrame, catalogue_dir: Path, as_of: int, recent_n: int
) -> tuple[DataFrame, DataFrame]:
    """Views item_stats, user_history and items; returns (user history, items), cached."""
    from batch.views import catalogue_as_of, item_stats, items_view, user_history
    from lambdastack.master import TAGS_FILE

    stats = item_stats(events).cache()
    st.spark_view("item_stats", stats)
    st.rows["item_stats"] = stats.count()
    history = user_history(events, recent_n).cache()
    st.spark_view("user_history", history)
    st.rows["user_history"] = history.count()
    catalogue_path, tags_path = catalogue_dir / "items.parquet", catalogue_dir / TAGS_FILE
    if catalogue_path.exists():
        dated = st.spark.read.parquet(str(tags_path)) if tags_path.exists() else None
        catalogue = catalogue_as_of(st.spark.read.parquet(str(catalogue_path)), dated, as_of)
    else:
        catalogue = stats.selectExpr(
            "item_id",
            "CAST(NULL AS STRING) AS title",
            "CAST(array() AS ARRAY<STRING>) AS genres",
            "CAST(array() AS ARRAY<STRING>) AS tags",
        )
    items = items_view(catalogue, stats).cache()
    st.spark_view("items", items)
    st.rows["items"] = items.count()
    rows = st.rows
    st.progress(
        "aggregates",
        f"item_stats {rows['item_stats']}, user_history {rows['user_history']}, items {rows['items']}",
    )
    return history, items


def _embeddings(st: _Staging, events: DataFrame, items: DataFrame) -> tuple[ItemVectors, pd.DataFrame]:
    """View item_embeddings; returns (item vectors, users' ALS factors)."""
    from batch import embeddings

    content = embeddings.content_vectors(items)
    st.progress(
        "content",
        f"content vectors for {len(content)} items (TF-IDF, projected to {embeddings.CONTENT_DIM} dims)",
    )
    item_als, user_als = embeddings.als_factors(st.spark, events)
    st.progress("als", f"ALS rank {embeddings.ALS_RANK}: {len(item_als)} items, {len(user_als)} users")
    vectors = embeddings.item_vectors(content, item_als)
    raw = dict(zip(item_als["item_id"], item_als["features"], strict=True))
    st.rows["item_embeddings"] = _write(
        pd.DataFrame(
            {
                "item_id": vectors.item_ids,
                "content": list(vectors.content),
                "vector": list(vectors.combined),
                "collaborative": vectors.has_collab,
                "als": [None if (f := raw.get(i)) is None else list(map(float, f)) for i in vectors.item_ids],
            }
        ),
        st.dir / "item_embeddings",
    )
    st.progress("embeddings", f"item embeddings ({vectors.combined.shape[1]} dims)")
    return vectors, user_als


def _neighbours(st: _Staging, events: DataFrame, vectors: ItemVectors, window: int, n: int) -> None:
    """View item_neighbours: co-visitation neighbours, content ones for items without any."""
    from batch.neighbours import CONTENT, COVISIT, item_neighbours

    kinds = item_neighbours(
        st.spark, events, vectors, window, n, lambda view: st.spark_view("item_neighbours", view)
    )
    st.rows["item_neighbours"] = sum(kinds.values())
    st.progress(
        "neighbours",
        f"up to {n} neighbours per item: {kinds[COVISIT]} items by co-visitation (window {window}), "
        f"{kinds[CONTENT]} by content",
    )


def _item_side(items: DataFrame, vectors: ItemVectors) -> tuple[ItemSide, dict[str, list[str]]]:
    """What the features need about items (content vectors, genres), and each item's tags."""
    meta = items.select("item_id", "genres", "tags").toPandas()
    side = ItemSide(
        dict(zip(vectors.item_ids, vectors.content, strict=True)),
        {i: list(g) if g is not None else [] for i, g in zip(meta["item_id"], meta["genres"], strict=True)},
    )
    tags = {i: list(t) if t is not None else [] for i, t in zip(meta["item_id"], meta["tags"], strict=True)}
    return side, tags


def _profiles(
    st: _Staging,
    events: DataFrame,
    side: ItemSide,
    tags: dict[str, list[str]],
    user_als: pd.DataFrame,
    n_clusters: int,
) -> pd.DataFrame:
    """View user_profiles: each user's state, interest and ALS vectors combined, cluster."""
    from batch import embeddings, profiles
    from batch.vectors import combine

    prof = (
        profiles.profiles(st.spark, events, side, tags)
        .toPandas()
        .sort_values("user_id")
        .reset_index(drop=True)
    )
    als_by_user = dict(zip(user_als["user_id"], user_als["features"], strict=True))
    interest = np.vstack(
        [np.zeros(embeddings.CONTENT_DIM) if v is None else np.asarray(v) for v in prof["interest"]]
    )
    collab = np.vstack(
        [np.asarray(als_by_user.get(u, np.zeros(embeddings.ALS_RANK))) for u in prof["user_id"]]
    )
    has = np.array([u in als_by_user for u in prof["user_id"]])
    prof["als"] = [list(map(float, x)) if h else None for x, h in zip(collab, has, strict=True)]
    prof["vector"] = list(combine(interest, collab, has))
    clusters = profiles.clusters(st.spark, prof.rename(columns={"vector": "v"}), n_clusters)
    prof = prof.merge(clusters, on="user_id", how="left")
    st.rows["user_profiles"] = _write(prof, st.dir / "user_profiles")
    st.progress("profiles", f"profiles of {len(prof)} users, {n_clusters} clusters")
    return prof


def _candidates(
    st: _Staging,
    events: DataFrame,
    history: DataFrame,
    prof: pd.DataFrame,
    vectors: ItemVectors,
    as_of: int,
    settings: Settings,
) -> None:
    """Views candidates (per user, unseen items nearest the user's vector) and popular."""
    from batch import candidates

    b = settings.batch
    seen = history.select("user_id", "items").toPandas()
    users = prof[["user_id", "vector"]].rename(columns={"vector": "v"}).merge(seen, on="user_id")
    users["seen"] = users["items"]
    st.spark_view("candidates", candidates.user_candidates(st.spark, users, vectors, b.candidates_n))
    st.rows["candidates"] = len(users)
    clusters = st.spark.createDataFrame(prof[["user_id", "cluster"]])
    pop = candidates.popular(events, clusters, as_of, b.popular_n)
    st.spark_view("popular", pop)
    st.rows["popular"] = pop.count()
    st.progress("candidates", f"{b.candidates_n} candidates per user; popular lists: {st.rows['popular']}")


def _model(
    st: _Staging, events: DataFrame, vectors: ItemVectors, side: ItemSide, settings: Settings
) -> tuple[TrainedRanker, pd.DataFrame]:
    """View model: the ranker trained on the feed's pools, point in time; returns it and the set."""
    from pyspark.sql import functions as F

    from batch import ranker, training

    b = settings.batch
    times = events.select(F.unix_millis("event_time").alias("t"))
    train_from, validate_from = (
        int(x) for x in times.approxQuantile("t", [1 - b.train_fraction, 1 - b.train_fraction / 2], 0.0)
    )
    pool = training.PoolConfig.from_settings(settings)
    data = training.training_set(
        st.spark,
        events,
        vectors,
        side,
        train_from,
        b.train_max_queries,
        pool,
        b.covisit_window,
        b.neighbours_n,
    )
    st.progress(
        "training_set",
        f"training set: {len(data.rows)} rows, {data.answered} of {data.sampled} sampled queries "
        f"had their item in the pool (from {train_from}, neighbours fitted before it)",
    )
    trained = ranker.train(data.rows, validate_from)
    trained.metrics["retrieval"] = {
        "recent_n": pool.recent_n,
        "decay": pool.decay,
        "session_s": pool.session_ms // 1000,
    }
    trained.metrics["queries"] = {"sampled": data.sampled, "in_pool": data.answered}
    (st.dir / MODEL_FILE).parent.mkdir(parents=True)
    (st.dir / MODEL_FILE).write_bytes(trained.onnx)
    (st.dir / "model" / "metrics.json").write_text(json.dumps(trained.metrics, indent=2, sort_keys=True))
    m, k = trained.metrics, ranker.NDCG_K
    st.progress(
        "model",
        f"ranker pool NDCG@{k} {m[f'pool_ndcg@{k}']:.4f} "
        f"(by knn_score {m['baseline'][f'pool_ndcg@{k}_knn_score']:.4f}, "
        f"by item_pop {m['baseline'][f'pool_ndcg@{k}_item_pop']:.4f})",
    )
    return trained, data.rows


def _manifest(
    st: _Staging,
    events: DataFrame,
    n_events: int,
    as_of: int,
    settings: Settings,
    trained: TrainedRanker,
    training_data: pd.DataFrame,
) -> dict[str, Any]:
    """The manifest of the version: its input, row counts, model, feature baseline, versions."""
    span = events.selectExpr(
        "min(unix_millis(event_time)) AS lo", "max(unix_millis(event_time)) AS hi"
    ).first()
    assert span is not None  # n_events > 0
    positives = training_data[training_data["label"] == 1]
    return {
        "as_of_ms": as_of,
        "bucket_s": settings.batch.bucket_s,
        "input": {
            "master_dir": str(settings.path(settings.data.master_dir)),
            "events": n_events,
            "min_event_ms": span["lo"],
            "max_event_ms": span["hi"],
        },
        "rows": st.rows,
        # `retrieval`: the kNN evidence the model's features were computed with (speed.scoring_view)
        "model": {"file": MODEL_FILE, "metrics": trained.metrics, "retrieval": trained.metrics["retrieval"]},
        # the positives' feature distribution: live engagement events are compared with it (drift)
        "feature_baseline": feature_baseline.build(positives[list(FEATURE_NAMES)].to_numpy(), FEATURE_NAMES),
        "schema_version": VIEW_SCHEMA_VERSION,
        "code_version": __version__,
        "stage_seconds": st.progress.stages,
    }
