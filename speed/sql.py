"""Flink SQL of the speed job: Kafka source, validation, counts, dead letters, upsert sink."""

from __future__ import annotations

from lambdastack.settings import Settings


def _kafka_common(settings: Settings) -> str:
    return f"'properties.bootstrap.servers' = '{settings.kafka.bootstrap}'"


def source_ddl(settings: Settings) -> str:
    s = settings.speed
    return f"""
CREATE TABLE raw_events (
  payload STRING,
  `partition` INT METADATA VIRTUAL,
  `offset` BIGINT METADATA VIRTUAL
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
  `offset` BIGINT
) WITH (
  'connector' = 'kafka',
  'topic' = '{settings.topics.dead_letter}',
  {_kafka_common(settings)},
  'format' = 'json',
  'sink.delivery-guarantee' = 'at-least-once'
)"""


def signals_ddl(settings: Settings) -> str:
    return f"""
CREATE TABLE signals (
  item_id STRING,
  bucket_ms BIGINT,
  type STRING,
  cnt BIGINT,
  PRIMARY KEY (item_id, bucket_ms, type) NOT ENFORCED
) WITH (
  'connector' = 'upsert-kafka',
  'topic' = '{settings.topics.signals}',
  {_kafka_common(settings)},
  'key.format' = 'json',
  'value.format' = 'json'
)"""


def parsed_view() -> str:
    return """
CREATE TEMPORARY VIEW parsed AS
SELECT parse_event(payload) AS e, payload, `partition`, `offset` FROM raw_events"""


def valid_view(bucket_s: int) -> str:
    size = bucket_s * 1000
    return f"""
CREATE TEMPORARY VIEW valid_events AS
SELECT e.event_id AS event_id, e.user_id AS user_id, e.item_id AS item_id, e.type AS type,
       e.`value` AS `value`, e.event_time_ms AS event_time_ms,
       e.event_time_ms - MOD(e.event_time_ms, CAST({size} AS BIGINT)) AS bucket_ms
FROM parsed WHERE e.ok"""


def insert_dead_letters(settings: Settings) -> str:
    return f"""
INSERT INTO dead_letters
SELECT e.error, payload, 'kafka:{settings.topics.events}', `partition`, `offset`
FROM parsed WHERE NOT e.ok"""


INSERT_SIGNALS = """
INSERT INTO signals
SELECT item_id, bucket_ms, type, COUNT(*) FROM valid_events GROUP BY item_id, bucket_ms, type
UNION ALL
SELECT item_id, bucket_ms, '*', COUNT(*) FROM valid_events GROUP BY item_id, bucket_ms"""
