"""infra/docker-compose.yml agrees with conf/lambdastack.yaml, pyproject.toml and infra/pom.xml."""

import re
import shlex
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.specifiers import SpecifierSet

from lambdastack.settings import Settings, load_settings
from lambdastack.topics import topic_specs
from tools.cli import _parser

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf" / "lambdastack.yaml"
COMPOSE = ROOT / "infra" / "docker-compose.yml"
POM = ROOT / "infra" / "pom.xml"
PYPROJECT = ROOT / "pyproject.toml"

# Services that are allowed no healthcheck: kafka-init runs once and exits (speed waits for it to
# complete, not to be healthy); speed serves nothing to probe and no service waits for it.
NO_HEALTHCHECK = {"kafka-init", "speed"}
CONDITIONS = {"service_healthy", "service_completed_successfully", "service_started"}
SECRET_WORDS = {"PASSWORD", "PASSWD", "SECRET", "TOKEN", "KEY", "CREDENTIALS"}


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(CONF, environ={})


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict), f"{COMPOSE} must hold a mapping"
    return doc


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _image(service: dict[str, Any]) -> tuple[str, str]:
    name, _, tag = service["image"].rpartition(":")
    return name, tag


def _environment(service: dict[str, Any], raw: bool = False) -> dict[str, str]:
    """A service's environment; unless `raw`, with `${NAME:-default}` as compose resolves it when
    the host does not set NAME."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    out = {k: "" if v is None else str(v) for k, v in env.items()}
    return out if raw else {k: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", v) for k, v in out.items()}


def _published(service: dict[str, Any]) -> list[tuple[int, int]]:
    """(host port, container port) of each `ports` entry ("[ip:]host:container")."""
    out = []
    for entry in service.get("ports", []):
        *_, host, container = str(entry).split(":")
        out.append((int(host), int(container.split("/")[0])))
    return out


def _script(service: dict[str, Any]) -> str:
    """The shell script of a `bash -ec SCRIPT` command, else the command line."""
    cmd = service["command"]
    if isinstance(cmd, str):
        return cmd
    return cmd[-1] if cmd[:2] == ["bash", "-ec"] else shlex.join(cmd)


def _healthcheck_text(service: dict[str, Any]) -> str:
    assert service.get("healthcheck"), f"{service['image']}: no healthcheck"
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(test)


def test_compose_is_a_current_compose_file(compose):
    assert "version" not in compose, "the top-level `version:` key is obsolete in the Compose spec"
    assert set(compose["services"]) == {
        "kafka",
        "kafka-init",
        "redis",
        "jobmanager",
        "taskmanager",
        "speed",
        "api",
        "prometheus",
        "grafana",
    }


def test_every_image_has_a_pinned_version_tag(services):
    for name, svc in services.items():
        image, tag = _image(svc)
        assert image and tag, f"{name}: image {svc['image']!r} has no explicit tag"
        assert tag != "latest", f"{name}: image {svc['image']!r} uses `latest`"
        assert re.match(r"v?\d", tag), (
            f"{name}: tag {tag!r} of {svc['image']!r} does not start with a version"
        )


def test_kafka_image_is_the_configured_version(services, settings):
    for name in ("kafka", "kafka-init"):
        image, tag = _image(services[name])
        assert image == "apache/kafka", f"{name}: expected the official apache/kafka image, got {image!r}"
        assert tag == settings.kafka.version, (
            f"{name}: image tag {tag!r} != kafka.version {settings.kafka.version!r} in {CONF}"
        )


def test_kafka_listens_and_advertises_on_the_configured_ports(services, settings):
    k = settings.kafka
    kafka = services["kafka"]
    env = _environment(kafka)
    assert (k.port, k.port) in _published(kafka), (
        f"kafka must publish {k.port}:{k.port}, has {kafka.get('ports')}"
    )
    listeners = env["KAFKA_LISTENERS"]
    assert f"PLAINTEXT://:{k.port}" in listeners, f"KAFKA_LISTENERS {listeners!r} lacks PLAINTEXT on {k.port}"
    assert f"CONTROLLER://:{k.controller_port}" in listeners, (
        f"KAFKA_LISTENERS {listeners!r} lacks CONTROLLER on {k.controller_port}"
    )
    assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://kafka:{k.port}"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].endswith(f":{k.controller_port}")
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_NUM_PARTITIONS"] == str(k.partitions), "KAFKA_NUM_PARTITIONS != kafka.partitions"
    assert f"-Xmx{k.heap}" in env["KAFKA_HEAP_OPTS"], f"KAFKA_HEAP_OPTS does not use kafka.heap {k.heap!r}"
    assert f"localhost:{k.port}" in _healthcheck_text(kafka), "the kafka healthcheck probes another port"
    factors = {key: v for key, v in env.items() if key.endswith("REPLICATION_FACTOR")}
    assert factors and set(factors.values()) == {"1"}, (
        f"a single broker needs replication factors 1: {factors}"
    )


def _created_topics(script: str) -> dict[str, tuple[int, dict[str, str]]]:
    topics = {}
    for line in script.splitlines():
        argv = shlex.split(line)
        if not argv or not argv[0].endswith("kafka-topics.sh"):
            continue
        assert "--create" in argv and "--if-not-exists" in argv, f"not an idempotent create: {line}"
        name = argv[argv.index("--topic") + 1]
        partitions = int(argv[argv.index("--partitions") + 1])
        configs = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "--config")
        topics[name] = (partitions, configs)
    return topics


def test_kafka_init_creates_every_topic_of_topic_specs(services, settings):
    created = _created_topics(_script(services["kafka-init"]))
    expected = {t.name: (t.partitions, t.config) for t in topic_specs(settings)}
    assert created == expected, f"kafka-init creates {created}, topic_specs(settings) says {expected}"
    assert f"kafka:{settings.kafka.port}" in _script(services["kafka-init"])


def test_redis_publishes_the_configured_port(services, settings):
    redis = services["redis"]
    port = settings.redis.port
    assert (port, port) in _published(redis), f"redis must publish {port}:{port}, has {redis.get('ports')}"
    assert str(port) in redis["command"], f"redis-server must listen on redis.port {port}"
    assert f"-p {port}" in _healthcheck_text(redis), "the redis healthcheck probes another port"


def _pinned(requirement_name: str) -> str:
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    pins = [d.split("==", 1)[1] for d in deps if d.split("==", 1)[0].strip() == requirement_name]
    assert len(pins) == 1, f"{PYPROJECT} must pin {requirement_name} exactly once with =="
    return pins[0]


def test_flink_images_match_the_configured_and_pinned_flink(services, settings):
    pin = _pinned("apache-flink")
    assert pin == settings.speed.flink_version, (
        f"pyproject.toml pins apache-flink=={pin}, conf says speed.flink_version "
        f"{settings.speed.flink_version}"
    )
    for name in ("jobmanager", "taskmanager"):
        image, tag = _image(services[name])
        assert image == "flink", f"{name}: expected the official flink image, got {image!r}"
        assert tag.startswith(f"{settings.speed.flink_version}-"), (
            f"{name}: tag {tag!r} is not Flink {settings.speed.flink_version}"
        )
        assert tag.split("-")[0] == pin, f"{name}: Flink {tag.split('-')[0]} != apache-flink=={pin}"


def test_python_image_satisfies_requires_python(services):
    requires = tomllib.loads(PYPROJECT.read_text())["project"]["requires-python"]
    for name in ("speed", "api"):
        image, tag = _image(services[name])
        assert image == "python", f"{name}: expected the official python image, got {image!r}"
        version = tag.split("-")[0]
        assert SpecifierSet(requires).contains(version), f"{name}: Python {version} is outside {requires}"


def test_api_publishes_the_configured_port(services, settings):
    api = services["api"]
    port = settings.serving.port
    assert (port, port) in _published(api), f"api must publish {port}:{port}, has {api.get('ports')}"
    probe = _healthcheck_text(api)
    assert f"localhost:{port}/health" in probe, f"the api healthcheck {probe!r} does not probe :{port}/health"


def test_apps_run_real_cli_commands(services):
    for name, expected in (("speed", ("speed", "run")), ("api", ("serve", None))):
        last = _script(services[name]).strip().splitlines()[-1]
        argv = shlex.split(last)
        assert argv[:2] == ["exec", "lambdastack"], f"{name}: last line {last!r} must exec lambdastack"
        try:
            args = _parser().parse_args(argv[2:])
        except SystemExit:
            pytest.fail(f"{name}: `{last}` is not a valid lambdastack command line")
        assert (args.command, getattr(args, "action", None)) == expected, f"{name}: runs {argv[2:]}"
    assert "--host 0.0.0.0" in _script(services["api"]), "the api must listen on all container interfaces"


def test_the_api_container_is_allowed_to_listen_beyond_loopback(services):
    """On 0.0.0.0 placeholder keys are refused: the container's settings must not hold one."""
    env = {**_environment(services["api"]), "LAMBDASTACK_SERVING__HOST": "0.0.0.0"}
    s = load_settings(CONF, environ=env)  # a ConfigError if a placeholder key is left
    assert not any(k.placeholder() for k in s.serving.api_keys)


def test_environment_overrides_name_real_settings_and_point_at_services(services, settings):
    for name in ("speed", "api"):
        env = {k: v for k, v in _environment(services[name]).items() if k.startswith("LAMBDASTACK_")}
        assert env, f"{name}: has no LAMBDASTACK_ overrides"
        s = load_settings(CONF, environ=env)  # ConfigError if an override names no setting
        assert s.redis.host == "redis", f"{name}: redis.host is {s.redis.host!r}, not the redis service"
    speed = load_settings(CONF, environ=_environment(services["speed"]))
    assert speed.kafka.bootstrap == f"kafka:{settings.kafka.port}", (
        f"speed bootstraps from {speed.kafka.bootstrap}, the broker advertises kafka:{settings.kafka.port}"
    )


def test_every_long_running_service_has_a_healthcheck(services):
    for name, svc in services.items():
        if name in NO_HEALTHCHECK:
            continue
        check = svc.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name}: no healthcheck"
    assert services["kafka-init"].get("restart") == "no", "kafka-init is one-shot and must not restart"


def test_every_dependency_has_a_condition_the_target_can_meet(services):
    for name, svc in services.items():
        deps = svc.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on must be the long form with a condition"
        for target, spec in deps.items():
            assert target in services, f"{name} depends on an unknown service {target!r}"
            condition = (spec or {}).get("condition")
            assert condition in CONDITIONS, f"{name} -> {target}: condition {condition!r}"
            if condition == "service_healthy":
                assert "healthcheck" in services[target], (
                    f"{name} waits for {target} healthy, it has no healthcheck"
                )
            if condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", (
                    f"{name} waits for {target} to exit, it restarts"
                )
    assert services["speed"]["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
    assert services["speed"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["api"]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_no_environment_value_looks_like_a_secret(services):
    for name, svc in services.items():
        for key, value in _environment(svc, raw=True).items():
            words = set(re.split(r"_+", key.upper()))
            if words & SECRET_WORDS and value and not value.startswith("${"):
                pytest.fail(f"{name}: {key} holds a literal value; secrets stay out of {COMPOSE.name}")


def _pom_property(name: str) -> str:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    found = ET.parse(POM).getroot().find(f"m:properties/m:{name}", ns)
    assert found is not None and found.text, f"{POM} has no <{name}> property"
    return found.text.strip()


def test_pom_versions_match_the_settings(settings):
    assert _pom_property("kafka.version") == settings.kafka.version, (
        f"infra/pom.xml <kafka.version> != kafka.version {settings.kafka.version}"
    )
    assert _pom_property("flink.kafka.connector.version") == settings.speed.kafka_connector_version, (
        f"infra/pom.xml <flink.kafka.connector.version> != speed.kafka_connector_version "
        f"{settings.speed.kafka_connector_version}"
    )
