"""JVM artifacts of the stack, resolved from Maven Central by infra/pom.xml."""

from __future__ import annotations

import shutil
import subprocess

from lambdastack.errors import ServiceError
from lambdastack.jars import flink_kafka_connector, jars_dir, kafka_classpath
from lambdastack.settings import Settings


def fetched(settings: Settings) -> bool:
    cp = kafka_classpath(settings)
    return cp.is_dir() and any(cp.glob("kafka_2.13-*.jar")) and flink_kafka_connector(settings).is_file()


def fetch(settings: Settings, quiet: bool = True) -> None:
    """Resolve the Kafka broker and the Flink Kafka connector with Maven (cached in ~/.m2)."""
    if fetched(settings):
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceError(
            "Maven (mvn) is not on PATH; install it (apt-get install maven) to fetch the JVM artifacts."
        )
    pom = settings.root / "infra" / "pom.xml"
    cmd = [
        mvn,
        "-B",
        "-f",
        str(pom),
        "package",
        f"-Dkafka.version={settings.kafka.version}",
        f"-Dflink.kafka.connector.version={settings.speed.kafka_connector_version}",
        f"-Djars.dir={jars_dir(settings)}",
    ]
    if quiet:
        cmd.insert(2, "-q")
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0 or not fetched(settings):
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
        raise ServiceError(f"Maven could not resolve the JVM artifacts from {pom}:\n{tail}")
