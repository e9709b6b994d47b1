"""Layout of published batch versions, shared by the batch writer and every reader.

    {views_dir}/versions/v000042/manifest.json   complete versions only (renamed in whole)
    {views_dir}/versions/v000042/<view>/*.parquet
    {views_dir}/versions/v000042/model/ranker.onnx the ranking model (MODEL_FILE)
    {views_dir}/CURRENT                          the current version id, replaced atomically
    {views_dir}/_staging/<run-id>/               runs in progress; never read

A version directory appears by one rename of a finished staging directory, and CURRENT changes
by one rename of a temp file, so readers see either the old version or the new one in whole.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lambdastack.errors import NoVersionError

VERSION_RE = re.compile(r"^v(\d{6})$")
MANIFEST = "manifest.json"
MODEL_FILE = "model/ranker.onnx"  # relative to the version directory; the manifest names it too
VIEW_SCHEMA_VERSION = 2


def version_id(n: int) -> str:
    return f"v{n:06d}"


@dataclass(frozen=True)
class VersionLayout:
    views_dir: Path

    @property
    def versions_dir(self) -> Path:
        return self.views_dir / "versions"

    @property
    def current_file(self) -> Path:
        return self.views_dir / "CURRENT"

    def staging(self, run_id: str) -> Path:
        return self.views_dir / "_staging" / run_id

    def version_dir(self, vid: str) -> Path:
        return self.versions_dir / vid

    def view_dir(self, vid: str, view: str) -> Path:
        return self.version_dir(vid) / view

    def model_file(self, vid: str) -> Path:
        """The version's ONNX ranking model (absent in a version published without one)."""
        return self.version_dir(vid) / MODEL_FILE

    def list_versions(self) -> list[str]:
        """Complete versions, oldest first."""
        if not self.versions_dir.is_dir():
            return []
        return sorted(
            p.name
            for p in self.versions_dir.iterdir()
            if VERSION_RE.match(p.name) and (p / MANIFEST).is_file()
        )

    def next_version_number(self) -> int:
        existing = [
            int(m.group(1))
            for p in (self.versions_dir.iterdir() if self.versions_dir.is_dir() else [])
            if (m := VERSION_RE.match(p.name))
        ]
        return max(existing, default=0) + 1

    def current(self) -> str | None:
        """The current version id, or None before the first publish."""
        try:
            vid = self.current_file.read_text().strip()
        except FileNotFoundError:
            return None
        return vid or None

    def require_current(self) -> str:
        vid = self.current()
        if vid is None:
            raise NoVersionError(
                f"no batch version is published under {self.views_dir}; run `lambdastack batch run`"
            )
        return vid

    def set_current(self, vid: str) -> None:
        """Point CURRENT at a complete version (atomic rename)."""
        if not (self.version_dir(vid) / MANIFEST).is_file():
            raise NoVersionError(f"version {vid} does not exist under {self.versions_dir}")
        tmp = self.views_dir / f".CURRENT.{uuid.uuid4().hex[:8]}"
        with open(tmp, "w") as f:
            f.write(vid + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.current_file)

    def manifest(self, vid: str) -> dict[str, Any]:
        path = self.version_dir(vid) / MANIFEST
        try:
            return dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise NoVersionError(f"version {vid} does not exist under {self.versions_dir}") from None
