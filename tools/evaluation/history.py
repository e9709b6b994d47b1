"""The batch side of the replay: the dataset's events in a private master dataset and one batch
version as of the cut, built by the real batch job (batch/job.py) in a work directory of its own."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from lambdastack.settings import Settings
from lambdastack.versions import VersionLayout


def work_settings(settings: Settings, work_dir: Path) -> Settings:
    """The settings with the master dataset, catalogue and views moved under `work_dir`."""
    data = settings.data.model_copy(
        update={
            "master_dir": work_dir / "master",
            "catalogue_dir": work_dir / "catalogue",
            "views_dir": work_dir / "views",
        }
    )
    return settings.model_copy(update={"data": data})


def reusable_version(layout: VersionLayout, as_of_ms: int, history_events: int) -> str | None:
    """The current version when it was built as of the same instant from the same number of events."""
    vid = layout.current()
    if vid is None:
        return None
    m = layout.manifest(vid)
    same = int(m["as_of_ms"]) == as_of_ms and int(m["input"]["events"]) == history_events
    return vid if same else None


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
    from lambdastack.master import append, write_catalogue
    from tools.datasets.movielens import read_folder

    ws = work_settings(settings, work_dir)
    layout = VersionLayout(ws.path(ws.data.views_dir))
    if (vid := reusable_version(layout, as_of_ms, history_events)) is not None:
        echo(f"[eval] reusing batch version {vid} in {work_dir} (same as-of and history)")
        return ws, vid
    shutil.rmtree(work_dir, ignore_errors=True)
    data = read_folder(dataset_dir)
    append(data.events, ws.path(ws.data.master_dir))
    write_catalogue(data.items, ws.path(ws.data.catalogue_dir))
    echo(f"[eval] running the batch layer as of {as_of_ms} on {history_events} events")
    vid = job.run(ws, as_of_ms=as_of_ms, echo=echo)
    return ws, vid
