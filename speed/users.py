"""The user pipeline of the speed job: each user's last interactions, everything they interacted
with, and per-event scoring.

    events topic (own consumer group) -> parse_event -> per user, ordered by arrival:
      OVER ROWS (user_recent_n) LISTAGG -> ('recent', window)                         \
      every event (no state)            -> ('seen:' + item_id, event time)             > users topic
      OVER ROWS (user_window_n) LISTAGG -> score_fresh (pandas UDF) -> ('fresh', FreshCandidates) /
                                                                              (upsert-kafka)

Keyed state (the windows) lives in Flink's Java OVER operators; Python only scores, statelessly.
A user's events share one partition (the producer keys by user), so arrival order is offset order
and a replay rebuilds the same windows. The user pipeline has its own source and consumer group,
so scoring that falls behind slows only itself, never the counters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lambdastack.events import EVENT_TYPES
from lambdastack.features import event_weight
from lambdastack.settings import Settings
from speed.sql import unique_events_sql
from speed.user_window import ENTRY_SEP, entry_sql
from speed.user_writes import SEEN_PREFIX

RAW_TABLE, EVENTS_VIEW, SINK_TABLE = "user_raw_events", "user_events", "user_state"


def _with(options: dict[str, str]) -> str:
    """A WITH clause of connector options."""
    return "WITH (\n" + ",\n".join(f"  '{k}' = '{v}'" for k, v in options.items()) + "\n)"


def source_ddl(settings: Settings) -> str:
    s = settings.speed
    options = {
        "connector": "kafka",
        "topic": settings.topics.events,
        "properties.bootstrap.servers": settings.kafka.bootstrap,
        "properties.group.id": s.users_group,
        "properties.auto.offset.reset": "earliest",
        "scan.startup.mode": s.startup_mode,
        "format": "raw",
    }
    return f"CREATE TABLE {RAW_TABLE} (payload BYTES, pt AS PROCTIME()) {_with(options)}"


def events_view() -> str:
    """The valid events, each event id once (speed.sql.unique_events_sql), in arrival order."""
    parsed = f"(SELECT parse_event(payload) AS e, pt FROM {RAW_TABLE})"
    return f"""
CREATE TEMPORARY VIEW {EVENTS_VIEW} AS
SELECT e.event_id AS event_id, e.user_id AS user_id, e.item_id AS item_id, e.type AS type,
       e.`value` AS `value`, e.event_time_ms AS event_time_ms, pt
FROM ({unique_events_sql(parsed, "e.ok")})"""


def window_view(name: str, rows: int) -> str:
    """Per event: the user's last `rows` interactions (this one last) as one window string."""
    return f"""
CREATE TEMPORARY VIEW {name} AS
SELECT user_id, type, LISTAGG(entry, '{ENTRY_SEP}') OVER w AS win
FROM (SELECT user_id, type, {entry_sql()} AS entry, pt FROM {EVENTS_VIEW})
WINDOW w AS (PARTITION BY user_id ORDER BY pt ROWS BETWEEN {rows - 1} PRECEDING AND CURRENT ROW)"""


def sink_ddl(settings: Settings) -> str:
    options = {
        "connector": "upsert-kafka",
        "topic": settings.topics.users,
        "properties.bootstrap.servers": settings.kafka.bootstrap,
        "key.format": "json",
        "value.format": "json",
        "sink.buffer-flush.max-rows": str(settings.speed.users_flush_rows),
        "sink.buffer-flush.interval": f"{settings.speed.users_flush_ms} ms",
    }
    columns = "user_id STRING, field STRING, payload STRING, PRIMARY KEY (user_id, field) NOT ENFORCED"
    return f"CREATE TABLE {SINK_TABLE} ({columns}) {_with(options)}"


def never_positive_types() -> list[str]:
    """Event types whose weight does not depend on the value and is never positive: the SQL
    pre-filter before Python (the UDF still decides by lambdastack.features.is_positive)."""
    return [t for t in EVENT_TYPES if t not in ("watch", "rating") and event_weight(t, 1.0) <= 0]


def insert_users(score_events: bool = True) -> str:
    """Each event's `recent` window and seen record, and (unless per-event scoring is off) its
    `fresh` list. The seen branch reads the parsed events the windows read: the planner reuses
    the one parse (one Python call per event)."""
    recent = f"""
INSERT INTO {SINK_TABLE}
SELECT user_id, 'recent', win FROM user_recent
UNION ALL
SELECT user_id, CONCAT('{SEEN_PREFIX}', item_id), CAST(event_time_ms AS STRING) FROM {EVENTS_VIEW}"""
    if not score_events:
        return recent
    barred = ", ".join(f"'{t}'" for t in never_positive_types()) or "''"
    return f"""{recent}
UNION ALL
SELECT user_id, 'fresh', fresh FROM (
  SELECT user_id, score_fresh(user_id, win) AS fresh FROM user_window WHERE type NOT IN ({barred})
) WHERE fresh IS NOT NULL"""


def fresh_udf(settings: Settings) -> Any:
    """The pandas UDF score_fresh(user_id, window) -> encoded FreshCandidates or NULL."""
    import pandas as pd
    from pyflink.table import DataTypes
    from pyflink.table.udf import ScalarFunction, udf

    views_dir = str(settings.path(settings.data.views_dir))
    fresh_n, seeds_n, per_seed, check_s = (
        settings.speed.fresh_n,
        settings.speed.fresh_seeds,
        settings.speed.fresh_neighbours_n,
        settings.speed.version_check_s,
    )

    class ScoreFresh(ScalarFunction):  # type: ignore[misc]
        def open(self, function_context: Any) -> None:
            from lambdastack.follower import VersionFollower
            from lambdastack.versions import VersionLayout
            from speed import scoring_view
            from speed.udf_metrics import follower_gauges

            self.follower = VersionFollower(VersionLayout(Path(views_dir)), scoring_view.load, check_s)
            follower_gauges(function_context, "score_fresh", self.follower)

        def eval(self, user_ids: pd.Series, windows: pd.Series) -> pd.Series:
            from speed.scoring import fresh_values

            return pd.Series(
                fresh_values(
                    self.follower.current(), list(user_ids), list(windows), fresh_n, seeds_n, per_seed
                ),
                dtype=object,
            )

    return udf(ScoreFresh(), result_type=DataTypes.STRING(), func_type="pandas")


def add_to(t_env: Any, statements: Any, settings: Settings) -> None:
    """Add the user pipeline to the job (needs `parse_event` registered)."""
    s = settings.speed
    ddls = [
        source_ddl(settings),
        events_view(),
        window_view("user_recent", s.user_recent_n),
        sink_ddl(settings),
    ]
    if s.score_events:
        t_env.create_temporary_function("score_fresh", fresh_udf(settings))
        ddls.append(window_view("user_window", s.user_window_n))
    for ddl in ddls:
        t_env.execute_sql(ddl)
    statements.add_insert_sql(insert_users(s.score_events))
