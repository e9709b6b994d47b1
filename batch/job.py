"""`lambdastack batch run`: master dataset -> views -> a new published version."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lambdastack import __version__
from lambdastack.errors import DataError
from lambdastack.keys import bucket_start
from lambdastack.settings import Settings
from lambdastack.versions import VIEW_SCHEMA_VERSION, VersionLayout


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


def run(
    settings: Settings,
    as_of_ms: int | None = None,
    master_url: str | None = None,
    echo: Callable[[str], None] = print,
) -> str:
    """Compute the views as of an instant and publish them; returns the new version id."""
    from batch.publish import clean_stale_staging, publish
    from batch.session import spark_session
    from batch.views import events_before, item_stats, items_view, user_history

    master = settings.path(settings.data.master_dir)
    catalogue_path = settings.path(settings.data.catalogue_dir) / "items.parquet"
    layout = VersionLayout(settings.path(settings.data.views_dir))
    _check_master(master)
    as_of = aligned_as_of(as_of_ms, settings.batch.bucket_s)
    started = time.monotonic()
    stage_t = started

    def stage(msg: str) -> None:
        nonlocal stage_t
        now = time.monotonic()
        echo(f"[batch {now - started:6.1f}s] {msg} (+{now - stage_t:.1f}s)")
        stage_t = now

    stage(f"starting Spark ({master_url or settings.batch.spark_master})")
    spark = spark_session(settings, master_url)
    clean_stale_staging(layout, older_than_s=0)
    run_id = uuid.uuid4().hex[:12]
    staging = layout.staging(run_id)
    raw = spark.read.option("basePath", str(master)).parquet(str(master / "event_date=*"))
    missing = {"event_id", "user_id", "item_id", "type", "value", "event_time"} - set(raw.columns)
    if missing:
        raise DataError(
            f"the master dataset {master} does not match the event schema: missing {sorted(missing)}"
        )
    events = events_before(raw, as_of).cache()
    n_events = events.count()
    if n_events == 0:
        raise DataError(f"the master dataset {master} has no event before the as-of {as_of} ms")
    stage(f"read {n_events} events before as-of {as_of}")
    stats = item_stats(events).cache()
    stats.coalesce(1).write.parquet(str(staging / "item_stats"))
    stage(f"item_stats: {stats.count()} items")
    history = user_history(events)
    history.coalesce(1).write.parquet(str(staging / "user_history"))
    n_users = spark.read.parquet(str(staging / "user_history")).count()
    stage(f"user_history: {n_users} users")
    if catalogue_path.exists():
        catalogue = spark.read.parquet(str(catalogue_path))
    else:
        catalogue = stats.selectExpr(
            "item_id",
            "CAST(NULL AS STRING) AS title",
            "CAST(array() AS ARRAY<STRING>) AS genres",
            "CAST(array() AS ARRAY<STRING>) AS tags",
        )
    items_view(catalogue, stats).coalesce(1).write.parquet(str(staging / "items"))
    n_items = spark.read.parquet(str(staging / "items")).count()
    stage(f"items: {n_items} catalogue entries")
    span = events.selectExpr(
        "min(unix_millis(event_time)) AS lo", "max(unix_millis(event_time)) AS hi"
    ).first()
    assert span is not None  # n_events > 0
    manifest: dict[str, Any] = {
        "as_of_ms": as_of,
        "bucket_s": settings.batch.bucket_s,
        "input": {
            "master_dir": str(master),
            "events": n_events,
            "min_event_ms": span["lo"],
            "max_event_ms": span["hi"],
        },
        "rows": {"item_stats": stats.count(), "user_history": n_users, "items": n_items},
        "schema_version": VIEW_SCHEMA_VERSION,
        "code_version": __version__,
        "created_ms": int(time.time() * 1000),
    }
    vid = publish(layout, staging, manifest, settings.batch.keep_versions)
    stage(f"published {vid} (as-of {as_of})")
    return vid
