"""Flink SQL of the speed job: Kafka source with event time, validation, dead letters, counts per
hour bucket and per minute, trending windows; every result goes to an upsert sink (signals topic).

Valid events are de-duplicated by `event_id` before anything counts them (`unique_events_sql`):
a client that retries a batch the API answered 503 to, although Kafka took it, or a producer that
sends a file twice, counts once. Flink keeps the first record of each event id (processing time)
and forgets the id `speed.dedupe_ttl_s` after it arrived (speed.plan sets that TTL on the
operators), so the state is bounded by rate × TTL; the batch layer de-duplicates all history."""

from __future__ import annotations

from lambdastack.events import EVENT_TYPES
from lambdastack.settings import Settings

MINUTE_MS = 60_000
# window ends are computed in seconds since this instant (2020-01-01): TIMESTAMPDIFF is an INT
EPOCH_BASE_MS = 1_577_836_800_000


def _kafka_common(settings: Settings) -> str:
    return f"'properties.bootstrap.servers' = '{settings.kafka.bootstrap}'"


def interval(ms: int) -> str:
    """A SQL interval literal, exact to the millisecond."""
    sec, milli = divmod(ms, 1000)
    minutes, sec = divmod(sec, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"INTERVAL '{days} {hours:02d}:{minutes:02d}:{sec:02d}.{milli:03d}' DAY TO SECOND(3)"


def table_options(settings: Settings) -> dict[str, str]:
    """Table config the event-time pipelines need (set before the statements are planned)."""
    s = settings.speed
    return {
        "table.exec.source.idle-timeout": f"{s.source_idle_timeout_ms} ms",
        "pipeline.auto-watermark-interval": f"{s.watermark_interval_ms} ms",
    }


def source_ddl(settings: Settings) -> str:
    s = settings.speed
    return f"""
CREATE TABLE raw_events (
  payload BYTES,  -- bytes as sent: a record that is not UTF-8 still reaches the parse (and its dead letter)
  `partition` INT METADATA VIRTUAL,
  `offset` BIGINT METADATA VIRTUAL,
  ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  pt AS PROCTIME(),  -- arrival order, which the de-duplication keeps the first of
  WATERMARK FOR ts AS ts - {interval(s.watermark_delay_ms)}
) WITH (
  'connector' = 'kafka',
  'topic' = '{settings.topics.events}',
  {_kafka_common(settings)},
  'properties.group.id' = '{s.consumer_group}',
  'properties.auto.offset.reset' = 'earliest',
  'scan.startup.mode' = '{s.startup_mode}',
  'format' = 'raw'
)"""


def dead_letter_ddl(settings: Settings) -> str:
    return f"""
CREATE TABLE dead_letters (
  reason STRING,
  payload STRING,
  source STRING,
  `partition` INT,
  `offset` BIGINT,
  kafka_timestamp TIMESTAMP_LTZ(3)
) WITH (
  'connector' = 'kafka',
  'topic' = '{settings.topics.dead_letter}',
  {_kafka_common(settings)},
  'format' = 'json',
  'sink.delivery-guarantee' = 'at-least-once'
)"""


def count_columns() -> str:
    """The value columns of a count record: all types, then one per event type, then the newest
    event time counted (what freshness is measured from)."""
    per_type = ", ".join(f"`{t}` BIGINT" for t in EVENT_TYPES)
    return f"cnt BIGINT, {per_type}, max_event_ms BIGINT"


def count_aggregates() -> str:
    """The SQL aggregates that fill `count_columns`."""
    per_type = ", ".join(f"COUNT(*) FILTER (WHERE type = '{t}')" for t in EVENT_TYPES)
    return f"COUNT(*), {per_type}, MAX(event_time_ms)"


def signals_ddl(settings: Settings) -> str:
    """Hourly counts per item × bucket, one column per type: the records of the merge contract
    (no `kind`). One record per update carries every type, so an event costs one record."""
    return upsert_sink(
        settings, "signals", f"item_id STRING, bucket_ms BIGINT, {count_columns()}", "item_id, bucket_ms"
    )


def parsed_view() -> str:
    """Every record parsed once. The parse takes the source position and returns it (and the
    payload of an invalid record), and every consumer of the view also reads `ts`: so all of
    them need the same Python call on the same columns, and the planner computes it once and
    shares the result (were their projections to differ, it would plan one Python call each)."""
    return """
CREATE TEMPORARY VIEW parsed AS
SELECT parse_event(payload, `partition`, `offset`) AS e, ts, pt FROM raw_events"""


def unique_events_sql(source: str, where: str, columns: str = "") -> str:
    """The rows of `source` (with a parsed event `e` and a proctime `pt`) whose event is the first
    of its `event_id`: Flink's keep-first-row de-duplication (the ROW_NUMBER pattern the planner
    turns into one insert-only Deduplicate operator). `e`, `pt` and `columns` are kept."""
    more = f", {columns}" if columns else ""
    return f"""SELECT e, pt{more} FROM (
  SELECT e, pt{more}, ROW_NUMBER() OVER (PARTITION BY k ORDER BY pt ASC) AS rn FROM (
    SELECT e, e.event_id AS k, pt{more} FROM {source} WHERE {where}
  )
) WHERE rn = 1"""


def valid_view(bucket_s: int) -> str:
    """Valid events, each event id once, with their buckets. `ts IS NOT NULL` drops nothing (a
    rowtime is never null: the watermark assigner fails the job on one); it makes the counters
    read `ts` too, so that they share the one parse with the trending and drift pipelines (see
    `parsed_view`)."""
    size = bucket_s * 1000
    unique = unique_events_sql("parsed", "e.ok AND ts IS NOT NULL", "ts")
    return f"""
CREATE TEMPORARY VIEW valid_events AS
SELECT e.event_id AS event_id, e.user_id AS user_id, e.item_id AS item_id, e.type AS type,
       e.`value` AS `value`, e.event_time_ms AS event_time_ms,
       e.event_time_ms - MOD(e.event_time_ms, CAST({size} AS BIGINT)) AS bucket_ms,
       e.event_time_ms - MOD(e.event_time_ms, CAST({MINUTE_MS} AS BIGINT)) AS minute_ms,
       ts
FROM ({unique})"""


def insert_dead_letters(settings: Settings) -> str:
    return f"""
INSERT INTO dead_letters
SELECT e.error, e.`raw`, 'kafka:{settings.topics.events}', e.source_partition, e.source_offset, ts
FROM parsed WHERE NOT e.ok"""


def insert_signals() -> str:
    return f"""
INSERT INTO signals
SELECT item_id, bucket_ms, {count_aggregates()} FROM valid_events GROUP BY item_id, bucket_ms"""


def window_end_ms() -> str:
    """SQL of the epoch-ms end of the window a window TVF row belongs to (window_time + 1 ms)."""
    since = f"TIMESTAMPDIFF(SECOND, TO_TIMESTAMP_LTZ({EPOCH_BASE_MS}, 3), window_time)"
    return f"CAST({since} AS BIGINT) * 1000 + {EPOCH_BASE_MS + 1000}"


def upsert_sink(settings: Settings, name: str, columns: str, key: str) -> str:
    """An upsert-kafka table on the signals topic; `kind` in the key tells the loader its shape."""
    return f"""
CREATE TABLE {name} (
  {columns},
  PRIMARY KEY ({key}) NOT ENFORCED
) WITH (
  'connector' = 'upsert-kafka',
  'topic' = '{settings.topics.signals}',
  {_kafka_common(settings)},
  'key.format' = 'json',
  'value.format' = 'json',
  'sink.buffer-flush.max-rows' = '{settings.speed.signals_flush_rows}',
  'sink.buffer-flush.interval' = '{settings.speed.signals_flush_ms} ms'
)"""


def minute_signals_ddl(settings: Settings) -> str:
    return upsert_sink(
        settings,
        "minute_signals",
        f"kind STRING, item_id STRING, minute_ms BIGINT, {count_columns()}",
        "kind, item_id, minute_ms",
    )


def insert_minute_signals(settings: Settings) -> str:
    """Exact counts per item x event-time minute (per type and in all); state kept a bounded
    time. Grouped by the sink's key: no upsert materializer (and its state)."""
    hint = f"/*+ STATE_TTL('v' = '{settings.speed.minute_state_ttl_s} s') */"
    return f"""
INSERT INTO minute_signals
SELECT {hint} 'min', item_id, minute_ms, {count_aggregates()}
FROM valid_events v GROUP BY item_id, minute_ms"""


def trending_ddl(settings: Settings) -> str:
    return upsert_sink(
        settings,
        "trending_windows",
        "kind STRING, window_end_ms BIGINT, items STRING",
        "kind, window_end_ms",
    )


def item_windows_view(settings: Settings) -> str:
    """Distinct users and events per item in sliding event-time windows (Java window state),
    for the items with enough distinct users to trend."""
    s = settings.speed
    return f"""
CREATE TEMPORARY VIEW item_windows AS
SELECT item_id, users, events, wt FROM (
  SELECT item_id, window_start, window_end, window_time AS wt,
         COUNT(DISTINCT user_id) AS users, COUNT(*) AS events
  FROM TABLE(HOP(TABLE valid_events, DESCRIPTOR(ts),
                 {interval(s.trending_slide_s * 1000)}, {interval(s.trending_window_s * 1000)}))
  GROUP BY item_id, window_start, window_end, window_time
) WHERE users >= {s.trending_min_users}"""


def insert_trending(settings: Settings) -> str:
    """One record per closed window: 'item users events' of every item with enough users, ';'-joined."""
    s = settings.speed
    return f"""
INSERT INTO trending_windows
SELECT 'trend',
       {window_end_ms()},
       LISTAGG(CONCAT_WS(' ', item_id, CAST(users AS STRING), CAST(events AS STRING)), ';')
FROM TABLE(TUMBLE(TABLE item_windows, DESCRIPTOR(wt), {interval(s.trending_slide_s * 1000)}))
GROUP BY window_start, window_end, window_time"""
