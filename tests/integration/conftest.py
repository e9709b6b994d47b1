"""Fixtures that run the speed job and the API as real processes for one test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Isolated
from tests.integration.helpers import eventually, start_cli
from tools.stack import kafka
from tools.stack.process import ManagedProcess, port_open


def start_speed_job(iso: Isolated, timeout_s: float = 120) -> ManagedProcess:
    """Create the test's topics and start `lambdastack speed run`; wait until the job runs."""
    kafka.create_topics(iso.settings)
    proc = start_cli("speed", ["speed", "run"], iso.env, iso.settings.state_dir / "tests" / iso.tag)
    eventually(
        lambda: "running; loading signals" in proc.log_tail(50) or not proc.running(),
        timeout_s,
        "the speed job start",
    )
    assert proc.running(), f"the speed job exited:\n{proc.log_tail(40)}"
    return proc


def start_api(iso: Isolated) -> ManagedProcess:
    s = iso.settings
    proc = start_cli("api", ["serve"], iso.env, s.state_dir / "tests" / iso.tag)
    eventually(lambda: port_open(s.serving.host, s.serving.port) or not proc.running(), 60, "the API start")
    assert proc.running(), f"the API exited:\n{proc.log_tail(40)}"
    return proc


@pytest.fixture
def stopper() -> Iterator[list[ManagedProcess]]:
    """Processes appended here are stopped after the test, and their logs shown if it failed."""
    procs: list[ManagedProcess] = []
    yield procs
    for p in procs:
        p.stop(timeout_s=20)
