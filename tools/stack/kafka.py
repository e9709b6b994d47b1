"""A single-node KRaft Kafka broker run with `java` from the Maven-resolved jars."""

from __future__ import annotations

import base64
import contextlib
import shutil
import subprocess
import uuid
from pathlib import Path

from lambdastack.errors import ServiceError
from lambdastack.settings import Settings
from lambdastack.topics import topic_specs
from tools.stack import jvm
from tools.stack.process import ManagedProcess, port_open, wait_until

_LOG4J = """status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
"""


def _home(settings: Settings) -> Path:
    return settings.state_dir / "kafka"


def process(settings: Settings) -> ManagedProcess:
    return ManagedProcess("kafka", settings.state_dir)


def server_properties(settings: Settings) -> str:
    k = settings.kafka
    data = _home(settings) / "data"
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers={k.host}:{k.controller_port}",
            f"listeners=PLAINTEXT://{k.host}:{k.port},CONTROLLER://{k.host}:{k.controller_port}",
            f"advertised.listeners=PLAINTEXT://{k.host}:{k.port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={data}",
            f"num.partitions={k.partitions}",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=4",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=true",
            "",
        ]
    )


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise ServiceError("Java is not on PATH; Kafka and the Spark/Flink engines need Java 17.")
    return java


def new_cluster_id() -> str:
    """A KRaft cluster id (22 url-safe base64 characters) that does not start with "-": the storage
    tool would read one that does as an option and fail (1 draw in 64)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _format_storage(settings: Settings, props: Path, log4j: Path) -> None:
    data = _home(settings) / "data"
    if (data / "meta.properties").exists():
        return
    cluster_id = new_cluster_id()
    cmd = [
        _java(),
        "-cp",
        f"{jvm.kafka_classpath(settings)}/*",
        f"-Dlog4j2.configurationFile={log4j}",
        "kafka.tools.StorageTool",
        "format",
        "--standalone",
        "-t",
        cluster_id,
        "-c",
        str(props),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise ServiceError(f"formatting Kafka storage in {data} failed: {done.stdout}{done.stderr}")


def ready(settings: Settings) -> bool:
    """True when the broker answers a metadata request."""
    if not port_open(settings.kafka.host, settings.kafka.port):
        return False
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=settings.kafka.bootstrap, request_timeout_ms=3000, client_id="lambdastack-ready"
        )
    except (KafkaError, OSError):
        return False
    try:
        admin.list_topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def create_topics(settings: Settings) -> None:
    """Create the platform's topics if missing (idempotent)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap, client_id="lambdastack-admin")
    try:
        existing = set(admin.list_topics())
        new = [
            NewTopic(s.name, s.partitions, 1, topic_configs=s.config)
            for s in topic_specs(settings)
            if s.name not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new)
    finally:
        admin.close()


def start(settings: Settings) -> int:
    """Fetch jars if needed, format storage on first start, start the broker, wait until ready."""
    proc = process(settings)
    if proc.running():
        wait_until(lambda: ready(settings), settings.stack.ready_timeout_s, "Kafka", proc)
        create_topics(settings)
        return proc.pid() or 0
    if port_open(settings.kafka.host, settings.kafka.port):
        raise ServiceError(
            f"port {settings.kafka.port} is taken by a process lambdastack did not start; "
            "stop it or set kafka.port in conf/lambdastack.yaml"
        )
    jvm.fetch(settings)
    home = _home(settings)
    home.mkdir(parents=True, exist_ok=True)
    props, log4j = home / "server.properties", home / "log4j2.properties"
    props.write_text(server_properties(settings))
    log4j.write_text(_LOG4J)
    _format_storage(settings, props, log4j)
    pid = proc.start(
        [
            _java(),
            f"-Xmx{settings.kafka.heap}",
            f"-Xms{settings.kafka.heap}",
            "-XX:+UseG1GC",
            *settings.kafka.jvm_opts.split(),
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{jvm.kafka_classpath(settings)}/*",
            "kafka.Kafka",
            str(props),
        ],
        cwd=home,
    )
    wait_until(lambda: ready(settings), settings.stack.ready_timeout_s, "Kafka", proc)
    create_topics(settings)
    return pid
