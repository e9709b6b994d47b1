"""Shared fixtures. Integration tests run against a test stack of real services on its own ports
and state directory, started once per session (and stopped at the end if this session started
it). A service that cannot start fails the run with the reason."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lambdastack.settings import Settings, load_settings
from tests.schedule import module_of, unit_of, work_units

ROOT = Path(__file__).resolve().parents[1]
# LSTACK_TEST_SLOT=N (0-9) moves the test stack to its own ports and state directory, so two
# checkouts (or two people) can run the integration tests on one machine at the same time. Under
# `make test` each pytest-xdist worker (gw0, gw1, ...) takes the next slot: its own stack.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
SLOT = int(os.environ.get("LSTACK_TEST_SLOT", "0")) + (int(WORKER.removeprefix("gw")) if WORKER else 0)
PORT_SHIFT = 10 * SLOT
TEST_ENV = {
    "LAMBDASTACK_STACK__STATE_DIR": str(ROOT / ".state" / ("test" if SLOT == 0 else f"test{SLOT}")),
    "LAMBDASTACK_KAFKA__PORT": str(19092 + PORT_SHIFT),
    "LAMBDASTACK_KAFKA__CONTROLLER_PORT": str(19093 + PORT_SHIFT),
    "LAMBDASTACK_REDIS__PORT": str(16379 + PORT_SHIFT),
    "LAMBDASTACK_SERVING__PORT": str(18000 + PORT_SHIFT),
    "LAMBDASTACK_SPEED__METRICS_PORT": str(19249 + PORT_SHIFT),
    "LAMBDASTACK_PROMETHEUS__PORT": str(19090 + PORT_SHIFT),
    # C1 only in the Spark JVMs (the speed job's JVM has it by default): the suite's batch runs are
    # short and cold, and on 2 cores C2 compiling took about half of their time; the serial
    # collector: G1's concurrent threads cost more than they save on a small heap (2,000 events:
    # 67 against 73 CPU s a run)
    "LAMBDASTACK_BATCH__JVM_OPTS": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
    # one shuffle partition: the suite's worlds are a few thousand events, and each partition is a
    # task per stage (2,000 events: 59 against 73 CPU s a run; with the serial collector 56)
    "LAMBDASTACK_BATCH__SHUFFLE_PARTITIONS": "1",
    # the test brokers C1 only: they start often and carry little (start 5.2 against 8.4 CPU s,
    # idle 0.025 against 0.038 core)
    "LAMBDASTACK_KAFKA__JVM_OPTS": "-XX:TieredStopAtLevel=1",
    # and no adaptive re-planning after each shuffle: a fifth of a small run's CPU (conf/)
    "LAMBDASTACK_BATCH__ADAPTIVE": "false",
    # many speed jobs start: Flink's Prometheus reporter only where a test gives it a free port
    "LAMBDASTACK_SPEED__FLINK_METRICS_PORT": "0",
}


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(UnitScheduler(), "lambdastack-units")


class UnitScheduler:
    """`make test`'s `--dist loadscope`, with tests/schedule.py's work units as the scopes."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        if config.getoption("dist") != "loadscope":
            return None
        from xdist.scheduler import LoadScopeScheduling

        class Units(LoadScopeScheduling):  # type: ignore[misc]
            def _split_scope(self, nodeid: str) -> str:
                return unit_of(module_of(nodeid))

        return Units(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In an xdist worker: the work units longest first (the controller hands them out in the
    order a worker collected them)."""
    if WORKER:
        items[:] = work_units(items, lambda item: module_of(item.nodeid))


@pytest.fixture(scope="session")
def base_env() -> dict[str, str]:
    """The environment of the test stack (the developer's own overrides are dropped)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDASTACK_")}
    env.update(TEST_ENV)
    env["LAMBDASTACK_CONFIG"] = str(ROOT / "conf" / "lambdastack.yaml")
    return env


@pytest.fixture(scope="session")
def test_settings(base_env: dict[str, str]) -> Settings:
    return load_settings(environ=base_env)


@pytest.fixture(scope="session")
def services(test_settings: Settings) -> Iterator[Settings]:
    """Kafka and Redis of the test stack, ready."""
    from tools.stack import kafka, redis
    from tools.stack.manager import down, up_infra

    already = kafka.process(test_settings).running() and redis.process(test_settings).running()
    up_infra(test_settings, echo=lambda _msg: None)
    yield test_settings
    if not already:
        down(test_settings, echo=lambda _msg: None)


@dataclass(frozen=True)
class Isolated:
    """Settings and environment of one test: its own topics, key prefix and data directories."""

    settings: Settings
    env: dict[str, str]
    tag: str


def make_isolated(base_env: dict[str, str], tmp_path: Path, **extra: str) -> Isolated:
    """Settings with a unique topic set, key prefix, consumer groups and data directories."""
    tag = uuid.uuid4().hex[:10]
    env = dict(base_env)
    env.update(
        {
            "LAMBDASTACK_TOPICS__EVENTS": f"t{tag}.events",
            "LAMBDASTACK_TOPICS__DEAD_LETTER": f"t{tag}.dlq",
            "LAMBDASTACK_TOPICS__SIGNALS": f"t{tag}.signals",
            "LAMBDASTACK_TOPICS__USERS": f"t{tag}.users",
            "LAMBDASTACK_REDIS__KEY_PREFIX": f"t{tag}",
            "LAMBDASTACK_SPEED__CONSUMER_GROUP": f"t{tag}-speed",
            "LAMBDASTACK_SPEED__LOADER_GROUP": f"t{tag}-loader",
            "LAMBDASTACK_SPEED__USERS_GROUP": f"t{tag}-users",
            "LAMBDASTACK_DATA__MASTER_DIR": str(tmp_path / "master"),
            "LAMBDASTACK_DATA__CATALOGUE_DIR": str(tmp_path / "catalogue"),
            "LAMBDASTACK_DATA__VIEWS_DIR": str(tmp_path / "views"),
            **extra,
        }
    )
    return Isolated(load_settings(environ=env), env, tag)


@pytest.fixture
def isolated(base_env: dict[str, str], tmp_path: Path) -> Isolated:
    return make_isolated(base_env, tmp_path)
