"""Publishing is atomic: a `batch run` SIGKILLed at any point leaves the previous version current
and no partial version visible, and the next run removes what it left and publishes in whole.

Every killed run is a subprocess (`lambdastack batch run`), and so is the first run, whose
progress lines and timing choose the kill points (they follow the job when it gains stages). One
published store serves the whole module (a Spark run costs tens of seconds): the kills happen in
turn against it, then a normal run must recover from all of them; that one runs the same job in
this process, on the test session's Spark, which saves it a JVM start.
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq
import pytest

import batch.publish
from batch.job import run as run_job
from batch.publish import publish, view_checksum
from lambdastack.published import PublishedVersion
from lambdastack.versions import MANIFEST, VersionLayout
from serving.batch_view import load
from tests.conftest import Isolated, make_isolated
from tests.integration.helpers import eventually, load_synthetic, run_cli

pytestmark = pytest.mark.integration
START = 1_767_225_600_000  # 2026-01-01
FIRST_AS_OF = "2026-01-03T00:00:00Z"
NEXT_AS_OF = "2026-01-04T00:00:00Z"
PROGRESS = re.compile(r"^\[batch\s+([\d.]+)s\] (.*)$")
CORE_VIEWS = ("item_stats", "user_history", "items")
RUN_TIMEOUT_S = 600.0


def _ms(rfc3339: str) -> int:
    return int(datetime.fromisoformat(rfc3339).timestamp() * 1000)


def _progress(stdout: str) -> list[tuple[float, str]]:
    """(seconds since start, message) of each progress line."""
    return [(float(m.group(1)), m.group(2)) for line in stdout.splitlines() if (m := PROGRESS.match(line))]


@dataclass
class Store:
    iso: Isolated
    layout: VersionLayout
    first: str  # the version published before any kill
    views: set[str]  # the views the job writes; every complete version holds exactly these
    stages: list[tuple[float, str]]  # progress lines of the first run, the last one "published ..."
    killed: list[str] = field(default_factory=list)

    @property
    def staging_root(self) -> Path:
        return self.layout.views_dir / "_staging"

    def staging_dirs(self) -> list[Path]:
        return sorted(self.staging_root.iterdir()) if self.staging_root.is_dir() else []


@pytest.fixture(scope="module")
def store(base_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A small master dataset and a first version published by `lambdastack batch run`."""
    iso = make_isolated(base_env, tmp_path_factory.mktemp("batch-kill"))
    s = iso.settings
    # 300 events loaded twice: duplicates by event_id
    load_synthetic(s, duplicates=300, n_users=40, n_items=60, n_events=1500, seed=11, start_ms=START, days=4)
    done = run_cli(["batch", "run", "--as-of", FIRST_AS_OF], iso.env, timeout_s=RUN_TIMEOUT_S)
    assert done.returncode == 0, f"the first run failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    layout = VersionLayout(s.path(s.data.views_dir))
    first = done.stdout.split()[-1]
    stages = _progress(done.stdout)
    assert layout.current() == first and layout.list_versions() == [first]
    assert stages[-1][1].startswith(f"published {first}"), stages
    assert any(msg.startswith("read ") for _t, msg in stages), stages
    views = set(layout.manifest(first)["checksums"])
    assert set(CORE_VIEWS) <= views
    return Store(iso, layout, first, views, stages)


def assert_complete(layout: VersionLayout, vid: str, views: set[str]) -> None:
    """A version holds a manifest, every view of the job, and data matching the manifest."""
    manifest = layout.manifest(vid)
    assert set(manifest["checksums"]) == views, f"{vid} holds {sorted(manifest['checksums'])}"
    assert {p.name for p in layout.version_dir(vid).iterdir() if p.is_dir()} == views
    for name, digest in manifest["checksums"].items():
        view_dir = layout.view_dir(vid, name)
        assert view_checksum(view_dir) == digest, f"{vid}/{name} does not match its manifest checksum"
        parquet = [p for p in sorted(view_dir.rglob("*.parquet")) if not p.name.startswith((".", "_"))]
        rows = sum(pq.read_table(p).num_rows for p in parquet)  # every Parquet file reads whole
        if name in CORE_VIEWS:
            assert rows == manifest["rows"][name] > 0, f"{vid}/{name} holds {rows} rows"


def assert_only_complete_versions(layout: VersionLayout, views: set[str]) -> list[str]:
    """No directory under versions/ lacks a manifest, and every listed version is whole."""
    versions = layout.list_versions()
    on_disk = sorted(p.name for p in layout.versions_dir.iterdir())
    assert on_disk == versions, f"versions/ holds {on_disk}, complete ones are {versions}"
    for vid in versions:
        assert_complete(layout, vid, views)
    assert not list(layout.views_dir.glob(".CURRENT.*")), "a temp file of CURRENT was left behind"
    return versions


def assert_reader_follows_current(layout: VersionLayout, vid: str, as_of: str) -> None:
    view = load(PublishedVersion(layout, layout.require_current()))
    assert view.version == vid and view.as_of_ms == _ms(as_of)
    assert len(view.item_ids) > 0 and view.history and view.titles


class Watch:
    """Polls the views directory while a run goes on: a reader must never see a version
    directory without its manifest, nor CURRENT naming an incomplete version."""

    def __init__(self, layout: VersionLayout, interval_s: float = 0.005):
        self.layout, self.interval_s = layout, interval_s
        self.violations: list[str] = []
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        layout = self.layout
        while not self._stop.wait(self.interval_s):
            self.polls += 1
            if layout.versions_dir.is_dir():
                for p in layout.versions_dir.iterdir():
                    if not (p / MANIFEST).is_file():
                        self.violations.append(f"versions/{p.name} without {MANIFEST}")
            cur = layout.current()
            if cur is not None and not (layout.version_dir(cur) / MANIFEST).is_file():
                self.violations.append(f"CURRENT names {cur}, which has no {MANIFEST}")

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _group_alive(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    alive = []
    for p in psutil.process_iter(["status"]):
        with contextlib.suppress(ProcessLookupError, psutil.Error):
            if os.getpgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                alive.append(p.pid)
    return alive


@dataclass(frozen=True)
class Kill:
    """Kill the run once it printed `after_lines` progress lines, or `after_s` seconds in."""

    after_lines: int
    after_s: float | None = None

    def __str__(self) -> str:
        delay = f" or {self.after_s:.2f} s" if self.after_s is not None else ""
        return f"after {self.after_lines} progress lines{delay}"


def kill_point(name: str, stages: list[tuple[float, str]]) -> Kill:
    read = next(n for n, (_t, msg) in enumerate(stages) if msg.startswith("read ")) + 1
    before_publish = len(stages) - 1  # every line but "published"
    if name == "read":
        return Kill(read)
    if name == "views":  # the stage after reading writes the first views into staging
        return Kill(read + 1)
    if name == "before_publish":
        return Kill(before_publish)
    if name == "random":  # anywhere from Spark's start to the publish, by the first run's clock
        return Kill(before_publish, random.uniform(0.5, stages[before_publish - 1][0]))
    raise ValueError(name)


@contextlib.contextmanager
def batch_run(env: dict[str, str], as_of: str, log: Path) -> Iterator[subprocess.Popen[str]]:
    """`lambdastack batch run` in its own session; the whole group is SIGKILLed on the way out."""
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tools", "batch", "run", "--as-of", as_of],
            env={**env, "PYTHONUNBUFFERED": "1"},  # progress lines as they happen
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.stdout is not None
        proc.stdout.close()


def run_and_kill(store: Store, kill: Kill, log: Path) -> list[str]:
    """Start a run, SIGKILL its process group (the JVM included) at `kill`; its stdout lines."""
    lines: queue.Queue[str | None] = queue.Queue()
    seen: list[str] = []
    with batch_run(store.iso.env, NEXT_AS_OF, log) as proc:
        stdout = proc.stdout
        assert stdout is not None

        def read() -> None:
            for line in stdout:
                lines.put(line.rstrip("\n"))
            lines.put(None)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        started = time.monotonic()
        progress = 0
        while progress < kill.after_lines:
            left = started + (kill.after_s if kill.after_s is not None else RUN_TIMEOUT_S) - time.monotonic()
            if left <= 0:
                assert kill.after_s is not None, f"no kill point within {RUN_TIMEOUT_S} s; stdout: {seen}"
                break
            try:
                line = lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            assert line is not None, (
                f"the run ended before the kill ({kill}): {seen}\n{log.read_text()[-3000:]}"
            )
            seen.append(line)
            progress += bool(PROGRESS.match(line))
        os.killpg(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
        eventually(lambda: not _group_alive(proc.pid), 30, "the end of the killed run's process group")
        reader.join(timeout=10)
    with contextlib.suppress(queue.Empty):
        while (line := lines.get_nowait()) is not None:
            seen.append(line)
    return seen


@pytest.mark.parametrize("point", ["read", "random", "before_publish"])  # last: it leaves staging
def test_a_killed_run_leaves_the_previous_version_current(store: Store, point: str, tmp_path: Path):
    kill = kill_point(point, store.stages)
    layout = store.layout
    with Watch(layout) as watch:
        seen = run_and_kill(store, kill, tmp_path / "batch.log")
    what = f"killed {kill} ({point}); it printed {seen}"
    assert not any(PROGRESS.match(s) and "published" in s for s in seen), what
    store.killed.append(point)

    assert layout.current() == store.first, what
    versions = assert_only_complete_versions(layout, store.views)
    # a kill between the rename and CURRENT would leave a whole version that is not current
    assert versions[0] == store.first and all(v > store.first for v in versions[1:]), what
    assert_reader_follows_current(layout, store.first, FIRST_AS_OF)
    assert not watch.violations and watch.polls > 0, watch.violations[:5]
    if point in ("views", "before_publish"):
        staged = [p for p in store.staging_dirs() if any(q.is_dir() for q in p.iterdir())]
        assert staged, f"the run was not killed with views in staging: {what}"


class Died(BaseException):
    """Stands for a SIGKILL: nothing after it runs, no handler catches it."""


class _Os:
    """The `os` module as batch.publish sees it, with `rename` replaced."""

    def __init__(self, rename: Any):
        self.rename = rename

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


@pytest.mark.parametrize("dies_at", ["rename", "set_current"])
def test_a_run_dying_inside_publish_never_shows_a_partial_version(
    store: Store, isolated: Isolated, dies_at: str, monkeypatch: pytest.MonkeyPatch
):
    """The two steps a SIGKILL from outside cannot aim at: just before the rename of the staging
    directory, and between that rename and the update of CURRENT."""
    layout = VersionLayout(isolated.settings.path(isolated.settings.data.views_dir))
    shutil.copytree(store.layout.version_dir(store.first), layout.version_dir(store.first))
    layout.set_current(store.first)
    manifest = {k: v for k, v in store.layout.manifest(store.first).items() if k != "checksums"}

    def stage(run_id: str) -> Path:
        staging = layout.staging(run_id)
        shutil.copytree(layout.version_dir(store.first), staging, ignore=shutil.ignore_patterns(MANIFEST))
        return staging

    def rename(src: Path, dst: Path) -> None:
        assert (Path(src) / MANIFEST).is_file(), "a staging directory is renamed before its manifest"
        if dies_at == "rename":
            raise Died
        os.rename(src, dst)

    def die(*_args: object) -> None:
        raise Died

    staging = stage("dying")
    monkeypatch.setattr(batch.publish, "os", _Os(rename))
    if dies_at == "set_current":
        monkeypatch.setattr(VersionLayout, "set_current", die)
    with pytest.raises(Died):
        publish(layout, staging, manifest, keep=5)
    monkeypatch.undo()

    assert layout.current() == store.first
    versions = assert_only_complete_versions(layout, store.views)
    assert_reader_follows_current(layout, store.first, FIRST_AS_OF)
    if dies_at == "rename":
        assert versions == [store.first] and (staging / MANIFEST).is_file()
    else:
        assert len(versions) == 2 and not staging.exists()  # whole, and not current
    vid = publish(layout, stage("next"), manifest, keep=5)
    assert layout.current() == vid and vid not in versions
    assert assert_only_complete_versions(layout, store.views)[-1] == vid
    assert_reader_follows_current(layout, vid, FIRST_AS_OF)


def test_the_next_run_cleans_up_after_killed_runs_and_publishes(store: Store, spark: Any):
    layout = store.layout
    stale = store.staging_dirs()
    if "before_publish" in store.killed:
        assert stale, "the runs killed with views in staging left no staging directory"
    before = layout.list_versions()
    with Watch(layout) as watch:
        vid = run_job(store.iso.settings, as_of_ms=_ms(NEXT_AS_OF), echo=lambda _m: None)
    assert layout.current() == vid and vid not in before
    versions = assert_only_complete_versions(layout, store.views)
    assert versions[-1] == vid and versions[0] == store.first
    assert_reader_follows_current(layout, vid, NEXT_AS_OF)
    assert not any(p.exists() for p in stale), f"stale staging left: {[p.name for p in stale if p.exists()]}"
    assert store.staging_dirs() == []
    assert not watch.violations and watch.polls > 0, watch.violations[:5]
