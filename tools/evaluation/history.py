"""The batch side of the replay: the dataset's events in a private master dataset and one batch
version as of the cut, built by the real batch job (batch/job.py) in a work directory of its own."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

from lambdastack.errors import DataError
from lambdastack.settings import Settings
from lambdastack.versions import VersionLayout

FINGERPRINT_FILE = "BUILT_BY"  # beside CURRENT: batch_fingerprint of the code that built the views
KEEP_EVERY_VERSION = 1_000_000  # batch.keep_versions of a work dir: a rerun reuses any it built


def work_settings(settings: Settings, work_dir: Path) -> Settings:
    """The settings with the master dataset, catalogue and views moved under `work_dir`, where no
    version is garbage-collected (a replay with retrains stopped half-way resumes from its versions)."""
    data = settings.data.model_copy(
        update={
            "master_dir": work_dir / "master",
            "catalogue_dir": work_dir / "catalogue",
            "views_dir": work_dir / "views",
        }
    )
    batch = settings.batch.model_copy(update={"keep_versions": KEEP_EVERY_VERSION})
    return settings.model_copy(update={"data": data, "batch": batch})


def batch_fingerprint(settings: Settings) -> str:
    """A digest of what a batch version is built by: the batch layer's and the core's source
    files, the batch settings and the serving settings its training pools follow. A version built
    by other code or settings is not reused."""
    from batch.training import PoolConfig

    root = Path(__file__).resolve().parents[2]
    digest = hashlib.sha256(settings.batch.model_dump_json().encode())
    digest.update(repr(PoolConfig.from_settings(settings)).encode())
    for path in sorted([*root.glob("batch/*.py"), *root.glob("lambdastack/**/*.py")]):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def reusable_version(
    layout: VersionLayout, as_of_ms: int, history_events: int, fingerprint: str = ""
) -> str | None:
    """The newest complete version built as of the same instant from the same number of events by
    the same code and batch settings (`fingerprint`, stamped beside the views; a work dir built by
    other code is rebuilt whole, so every version in it was built by the stamped code)."""
    stamp = layout.views_dir / FINGERPRINT_FILE
    built_by = stamp.read_text().strip() if stamp.exists() else None
    if built_by != fingerprint:
        return None
    for vid in reversed(layout.list_versions()):
        m = layout.manifest(vid)
        if int(m["as_of_ms"]) == as_of_ms and int(m["input"]["events"]) == history_events:
            return vid
    return None


def build_version(
    settings: Settings,
    dataset_dir: Path,
    work_dir: Path,
    as_of_ms: int,
    history_events: int,
    echo: Callable[[str], None] = print,
) -> tuple[Settings, str]:
    """Load the dataset into `work_dir` and run the batch job as of the cut (or reuse the version a
    previous run built from the same data and cut); (work settings, version id)."""
    from batch import job
    from lambdastack.master import append, write_catalogue, write_tags
    from tools.datasets.movielens import read_folder

    ws = work_settings(settings, work_dir)
    layout = VersionLayout(ws.path(ws.data.views_dir))
    fingerprint = batch_fingerprint(ws)
    if (vid := reusable_version(layout, as_of_ms, history_events, fingerprint)) is not None:
        echo(f"[eval] reusing batch version {vid} in {work_dir} (same as-of, history, code and settings)")
        return ws, vid
    shutil.rmtree(work_dir, ignore_errors=True)
    data = read_folder(dataset_dir)
    append(data.events, ws.path(ws.data.master_dir))
    write_catalogue(data.items, ws.path(ws.data.catalogue_dir))
    write_tags(data.tags, ws.path(ws.data.catalogue_dir))
    echo(f"[eval] running the batch layer as of {as_of_ms} on {history_events} events")
    vid = job.run(ws, as_of_ms=as_of_ms, echo=echo)
    (layout.views_dir / FINGERPRINT_FILE).write_text(fingerprint + "\n")
    return ws, vid


def retrain_version(
    ws: Settings, as_of_ms: int, events: int, fingerprint: str, echo: Callable[[str], None] = print
) -> tuple[str, bool]:
    """The batch job re-run as of `as_of_ms` on the work dir's master dataset, which holds the whole
    dataset from `build_version` on (the job reads the events before its as-of), so the replayed
    events before the instant are there already; (version id, reused) where a version built as of
    the same instant from `events` events by the same code is reused. A version that did not read
    `events` events is an error: the master dataset does not hold what the replay replayed."""
    from batch import job

    layout = VersionLayout(ws.path(ws.data.views_dir))
    if (vid := reusable_version(layout, as_of_ms, events, fingerprint)) is not None:
        return vid, True
    echo(f"[eval] running the batch layer as of {as_of_ms} on {events} events")
    vid = job.run(ws, as_of_ms=as_of_ms, echo=echo)
    read = int(layout.manifest(vid)["input"]["events"])
    if read != events:
        raise DataError(
            f"the batch job as of {as_of_ms} ms read {read} events from {ws.data.master_dir}, "
            f"but {events} events of the dataset lie before that instant"
        )
    return vid, False
