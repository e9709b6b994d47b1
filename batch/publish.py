"""The publish protocol: a finished staging directory becomes the next version, atomically.

1. The job writes every view under `_staging/<run-id>/`.
2. `publish` checksums the data files, writes manifest.json (fsynced) last,
3. renames the staging directory to `versions/vNNNNNN` (one rename; a collision with a
   concurrent run takes the next number),
4. points CURRENT at it (one rename), and removes versions beyond `keep`.
A run killed before step 3 leaves only a staging directory, which no reader looks at and the
next run removes; killed between 3 and 4 leaves a complete version that is not current.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from lambdastack.versions import MANIFEST, VersionLayout, version_id


def data_files(view_dir: Path) -> list[Path]:
    return sorted(p for p in view_dir.rglob("*.parquet") if not p.name.startswith((".", "_")))


def view_checksum(view_dir: Path) -> str:
    """sha256 over the content of the view's Parquet files, independent of their names."""
    digests = sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in data_files(view_dir))
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


def clean_stale_staging(layout: VersionLayout, older_than_s: float = 0.0) -> None:
    """Remove staging directories of runs that died."""
    root = layout.views_dir / "_staging"
    if not root.is_dir():
        return
    now = time.time()
    for d in root.iterdir():
        if now - d.stat().st_mtime >= older_than_s:
            shutil.rmtree(d, ignore_errors=True)


def publish(layout: VersionLayout, staging: Path, manifest: dict[str, Any], keep: int) -> str:
    """Publish a complete staging directory as the next version and make it current."""
    views = {p.name: p for p in sorted(staging.iterdir()) if p.is_dir()}
    manifest = {**manifest, "checksums": {name: view_checksum(p) for name, p in views.items()}}
    tmp = staging / f".{MANIFEST}"
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, staging / MANIFEST)
    layout.versions_dir.mkdir(parents=True, exist_ok=True)
    while True:
        vid = version_id(layout.next_version_number())
        try:
            os.rename(staging, layout.version_dir(vid))
            break
        except OSError:
            if not layout.version_dir(vid).exists():
                raise
    layout.set_current(vid)
    collect_garbage(layout, keep)
    return vid


def collect_garbage(layout: VersionLayout, keep: int) -> list[str]:
    """Remove the oldest versions beyond `keep`, never the current one."""
    current = layout.current()
    versions = layout.list_versions()
    doomed = [v for v in versions[:-keep] if v != current] if len(versions) > keep else []
    for v in doomed:
        shutil.rmtree(layout.version_dir(v), ignore_errors=True)
    return doomed
