"""Where the stack's JVM artifacts live under the state directory (fetched by `tools.stack.jvm`)."""

from __future__ import annotations

from pathlib import Path

from lambdastack.settings import Settings


def jars_dir(settings: Settings) -> Path:
    """The folder Maven copies the resolved jars into."""
    return settings.state_dir / "jars"


def kafka_classpath(settings: Settings) -> Path:
    return jars_dir(settings) / f"kafka-{settings.kafka.version}"


def flink_kafka_connector(settings: Settings) -> Path:
    return (
        jars_dir(settings)
        / "flink"
        / f"flink-sql-connector-kafka-{settings.speed.kafka_connector_version}.jar"
    )
