"""tools.evaluation.history: a batch version is reused only when the same code and settings built it
from the same history."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lambdastack.settings import load_settings
from lambdastack.versions import VersionLayout
from tools.evaluation.history import FINGERPRINT_FILE, batch_fingerprint, reusable_version

pytestmark = pytest.mark.unit


def layout_with_version(tmp_path: Path) -> VersionLayout:
    layout = VersionLayout(tmp_path)
    (layout.version_dir("v000001")).mkdir(parents=True)
    manifest = {"as_of_ms": 1000, "input": {"events": 50}}
    (layout.version_dir("v000001") / "manifest.json").write_text(json.dumps(manifest))
    layout.current_file.write_text("v000001\n")
    return layout


def test_a_version_is_reused_only_with_the_same_cut_history_and_fingerprint(tmp_path: Path):
    layout = layout_with_version(tmp_path)
    settings = load_settings(environ={})
    fp = batch_fingerprint(settings)
    assert reusable_version(layout, 1000, 50, fp) is None  # built by unknown code
    (tmp_path / FINGERPRINT_FILE).write_text(fp + "\n")
    assert reusable_version(layout, 1000, 50, fp) == "v000001"
    assert reusable_version(layout, 1000, 51, fp) is None
    assert reusable_version(layout, 2000, 50, fp) is None
    other = settings.model_copy(update={"batch": settings.batch.model_copy(update={"neighbours_n": 7})})
    assert batch_fingerprint(other) != fp
    assert reusable_version(layout, 1000, 50, batch_fingerprint(other)) is None


def test_a_retrain_reuses_any_version_of_the_work_dir_built_as_of_its_instant(tmp_path: Path):
    from tools.evaluation.history import retrain_version, work_settings

    ws = work_settings(load_settings(environ={}), tmp_path)
    assert ws.batch.keep_versions >= 1000  # nothing a rerun could reuse is garbage-collected
    layout = layout_with_version(ws.path(ws.data.views_dir))
    later = {"as_of_ms": 5000, "input": {"events": 80}}
    layout.version_dir("v000002").mkdir(parents=True)
    (layout.version_dir("v000002") / "manifest.json").write_text(json.dumps(later))
    layout.current_file.write_text("v000002\n")
    fp = batch_fingerprint(ws)
    (layout.views_dir / FINGERPRINT_FILE).write_text(fp + "\n")
    assert reusable_version(layout, 1000, 50, fp) == "v000001"  # not current, still the cut's
    assert retrain_version(ws, 5000, 80, fp, echo=lambda _m: None) == ("v000002", True)
