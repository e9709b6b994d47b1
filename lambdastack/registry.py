"""Which published version is current: promote, rollback, and the history of both.

The serving and speed layers follow CURRENT, so changing it here is how an operator moves them
to another version. Every change is appended to `{views_dir}/HISTORY`, one JSON object a line:

    {"at_ms": 1795870800000, "action": "rollback", "version": "v000002", "previous": "v000003"}

`action` is `publish` (a batch run made its new version current), `promote` or `rollback`;
`previous` is the version that was current before (null before the first publish).

Promote and rollback refuse a version whose ranking model cannot serve: the model is loaded the way
the API and the speed job load it (`lambdastack.model.load_ranker`: onnxruntime, the input width
checked against the features, one trial run), so a corrupt or incompatible model never becomes
current. A version published without a model (ranked by popularity) may become current.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from lambdastack.errors import DataError, NoVersionError
from lambdastack.versions import VERSION_RE, VersionLayout

Action = Literal["publish", "promote", "rollback"]
ACTIONS: tuple[Action, ...] = ("publish", "promote", "rollback")
HISTORY = "HISTORY"


@dataclass(frozen=True)
class Change:
    """One change of CURRENT."""

    at_ms: int
    action: Action
    version: str
    previous: str | None


def history_file(layout: VersionLayout) -> Path:
    return layout.views_dir / HISTORY


def record(layout: VersionLayout, action: Action, version: str, previous: str | None) -> Change:
    """Append one change to HISTORY (a single O_APPEND write, fsynced)."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, not {action!r}")
    change = Change(int(time.time() * 1000), action, version, previous)
    line = json.dumps(asdict(change), separators=(",", ":")) + "\n"
    layout.views_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(history_file(layout), os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = "\n" + line  # a line torn by a crash stays apart from this one
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return change


def history(layout: VersionLayout) -> list[Change]:
    """Every recorded change, oldest first.

    A last line without its newline is a write cut short by a crash and is not a change.
    """
    try:
        text = history_file(layout).read_text()
    except FileNotFoundError:
        return []
    lines = text.split("\n")[:-1]  # drops "" after the last newline, or a torn last line
    changes = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            changes.append(Change(**json.loads(line)))
        except (ValueError, TypeError) as e:
            raise DataError(f"{history_file(layout)} line {n} is not a change record: {e}") from None
    return changes


def check_model(layout: VersionLayout, version: str) -> None:
    """Raise DataError, with the reason, unless the version's model (if it has one) loads, takes
    the features the code computes and runs on a trial batch."""
    from lambdastack.model import load_ranker

    path = layout.model_file(version)
    named = "model" in layout.manifest(version)
    if not path.exists():
        if named:
            raise DataError(f"version {version} names a model but {path} is missing; not making it current")
        return
    try:
        load_ranker(path.read_bytes(), version)
    except Exception as e:  # onnxruntime raises its own types for a corrupt file
        reason = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise DataError(
            f"the model of version {version} cannot serve ({reason}); not making it current"
        ) from e


def promote(layout: VersionLayout, version: str) -> Change:
    """Make a complete version current (its model checked first, `check_model`)."""
    if not VERSION_RE.match(version):
        raise NoVersionError(f"{version!r} is not a version id; version ids look like v000042")
    if version not in layout.list_versions():
        raise NoVersionError(
            f"version {version} is not a complete published version under {layout.versions_dir}; "
            "`lambdastack registry list` shows the versions there are"
        )
    check_model(layout, version)
    previous = layout.current()
    layout.set_current(version)
    return record(layout, "promote", version, previous)


def rollback(layout: VersionLayout) -> Change:
    """Make the newest complete version older than the current one current."""
    current = layout.require_current()
    older = [v for v in layout.list_versions() if v < current]
    if not older:
        raise NoVersionError(
            f"there is no complete version older than the current {current} under "
            f"{layout.versions_dir}; nothing to roll back to"
        )
    check_model(layout, older[-1])
    layout.set_current(older[-1])
    return record(layout, "rollback", older[-1], current)
