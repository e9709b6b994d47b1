"""Fixtures that run the speed job and the API as real processes for one test module, and the
one synthetic world with its published versions that the whole session shares."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lambdastack.settings import Settings
from lambdastack.versions import VersionLayout
from tests.conftest import Isolated, make_isolated
from tests.integration.helpers import eventually, load_synthetic, start_cli
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


HOUR = 3_600_000
DAY = 24 * HOUR


@dataclass(frozen=True)
class SharedVersion:
    """A synthetic world in a master dataset (its first 500 events loaded twice) and two versions
    published from it by the batch job: as of three days and two hours ago, the newer current.
    Shared by the session, so read-only: a test that promotes, rolls back or publishes works on a
    copy (`copy_views`); one that runs a job on the world reads `master_dir` but writes elsewhere."""

    iso: Isolated
    events: Any  # the unique events (pyarrow Table)
    versions: tuple[str, str]  # (older, newer); the newer is current
    asked_as_of_ms: tuple[int, int]  # the as-of each run was given (the manifests hold it floored)
    world: dict[str, int]  # the arguments of tools.datasets.synthetic.generate
    duplicates: int

    @property
    def views_dir(self) -> Path:
        return self.iso.settings.path(self.iso.settings.data.views_dir)

    @property
    def layout(self) -> VersionLayout:
        return VersionLayout(self.views_dir)

    def data_env(self, views_dir: Path | None = None) -> dict[str, str]:
        """Settings overrides reading this world: its master dataset, catalogue and views."""
        s = self.iso.settings
        return {
            "LAMBDASTACK_DATA__MASTER_DIR": str(s.path(s.data.master_dir)),
            "LAMBDASTACK_DATA__CATALOGUE_DIR": str(s.path(s.data.catalogue_dir)),
            "LAMBDASTACK_DATA__VIEWS_DIR": str(views_dir or self.views_dir),
        }

    def copy_views(self, dest: Path) -> Path:
        """A private copy of the views directory (both versions, CURRENT, HISTORY)."""
        shutil.copytree(self.views_dir, dest)
        return dest


@pytest.fixture(scope="session")
def spark(test_settings: Settings) -> Iterator[Any]:
    """The one Spark session (batch.spark_master) of every in-process Spark use of the test
    session: the batch job run in this process gets it too (`spark_session` is get-or-create)."""
    from batch.session import spark_session

    session = spark_session(test_settings)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def shared_version(
    base_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory, spark: Any
) -> SharedVersion:
    """One batch run per version for the whole session (in this process, on the session's Spark)."""
    from batch.job import run as batch_run

    iso = make_isolated(base_env, tmp_path_factory.mktemp("shared-version"))
    s = iso.settings
    now = int(time.time() * 1000)
    world = {"n_users": 30, "n_items": 40, "n_events": 2000, "seed": 5, "start_ms": now - 6 * DAY, "days": 5}
    events = load_synthetic(s, duplicates=500, **world)
    asked = (now - 3 * DAY, now - 2 * HOUR + 1234)  # off the bucket: the manifest holds it floored
    versions = (
        batch_run(s, as_of_ms=asked[0], echo=lambda _m: None),
        batch_run(s, as_of_ms=asked[1], echo=lambda _m: None),
    )
    return SharedVersion(iso, events, versions, asked, world, 500)
