"""The publish protocol: a finished staging directory becomes the next version, atomically.

1. The job writes every view under `_staging/<run-id>/`, holding an exclusive lock on
   `_staging/<run-id>/.lock` for as long as it runs.
2. `publish` checksums the data files, writes manifest.json (fsynced) last,
3. renames the staging directory to `versions/vNNNNNN` (one rename; a collision with a
   concurrent run takes the next number),
4. points CURRENT at it (one rename), and removes versions beyond `keep`.
A run killed before step 3 leaves only a staging directory, which no reader looks at and the
next run removes once its lock is free (a live concurrent run keeps its lock, so its directory
stays); killed between 3 and 4 leaves a complete version that is not current. Old versions are
renamed out of `versions/` before they are deleted, so a half-deleted one is never listed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import IO, Any

from lambdastack.errors import DataError
from lambdastack.registry import record
from lambdastack.versions import MANIFEST, VersionLayout, version_id

DATA_SUFFIXES = (".parquet", ".onnx", ".json")


def data_files(view_dir: Path) -> list[Path]:
    return sorted(
        p for p in view_dir.rglob("*") if p.suffix in DATA_SUFFIXES and not p.name.startswith((".", "_"))
    )


def view_checksum(view_dir: Path) -> str:
    """sha256 over the content of the view's data files, independent of their names."""
    digests = sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in data_files(view_dir))
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


LOCK = ".lock"
UNLOCKED_GRACE_S = 3600.0  # a staging directory without a lock file is left alone this long


def open_staging(layout: VersionLayout, run_id: str) -> tuple[Path, IO[bytes]]:
    """Create this run's staging directory and lock it; keep the returned file open while running."""
    staging = layout.staging(run_id)
    staging.mkdir(parents=True, exist_ok=False)
    lock = open(staging / LOCK, "wb")  # noqa: SIM115 - held for the run's lifetime
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return staging, lock


def _abandoned(d: Path, now: float) -> bool:
    try:
        with open(d / LOCK, "rb") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # a live run holds it
            return True
    except FileNotFoundError:
        return now - d.stat().st_mtime >= UNLOCKED_GRACE_S


def clean_stale_staging(layout: VersionLayout) -> list[str]:
    """Remove the staging directories of runs that died (their lock is free)."""
    root = layout.views_dir / "_staging"
    if not root.is_dir():
        return []
    now, removed = time.time(), []
    for d in sorted(root.iterdir()):
        if d.is_dir() and _abandoned(d, now):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d.name)
    return removed


def publish(
    layout: VersionLayout,
    staging: Path,
    manifest: dict[str, Any],
    keep: int,
    expected: set[str] | None = None,
) -> str:
    """Publish a complete staging directory as the next version and make it current."""
    views = {p.name: p for p in sorted(staging.iterdir()) if p.is_dir()}
    if expected is not None and (missing := expected - set(views)):
        raise DataError(
            f"the run's staging directory {staging} lacks the views {sorted(missing)}; not publishing"
        )
    manifest = {**manifest, "checksums": {name: view_checksum(p) for name, p in views.items()}}
    tmp = staging / f".{MANIFEST}"
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, staging / MANIFEST)
    layout.versions_dir.mkdir(parents=True, exist_ok=True)
    (staging / LOCK).unlink(missing_ok=True)  # the run still holds the open lock until it exits
    while True:
        vid = version_id(layout.next_version_number())
        try:
            os.rename(staging, layout.version_dir(vid))
            break
        except OSError:
            if not layout.version_dir(vid).exists():
                raise
    previous = layout.current()
    layout.set_current(vid)
    record(layout, "publish", vid, previous)
    collect_garbage(layout, keep)
    return vid


def collect_garbage(layout: VersionLayout, keep: int) -> list[str]:
    """Remove the oldest versions beyond `keep`, never the current one."""
    current = layout.current()
    versions = layout.list_versions()
    doomed = [v for v in versions[:-keep] if v != current] if len(versions) > keep else []
    trash = layout.views_dir / "_trash"
    for v in doomed:
        trash.mkdir(exist_ok=True)
        target = trash / f"{v}-{uuid.uuid4().hex[:8]}"
        os.rename(layout.version_dir(v), target)  # out of versions/ in one step
        shutil.rmtree(target, ignore_errors=True)
    if trash.is_dir():
        for leftover in trash.iterdir():  # left by a run killed while deleting
            shutil.rmtree(leftover, ignore_errors=True)
    return doomed
