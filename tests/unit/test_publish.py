import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch.publish import clean_stale_staging, collect_garbage, open_staging, publish, view_checksum
from lambdastack.errors import NoVersionError
from lambdastack.versions import VersionLayout

pytestmark = pytest.mark.unit


def _stage(layout: VersionLayout, run_id: str, rows: int):
    staging = layout.staging(run_id)
    (staging / "item_stats").mkdir(parents=True)
    pq.write_table(
        pa.table({"item_id": [f"i{n}" for n in range(rows)]}), staging / "item_stats" / "part-0.parquet"
    )
    return staging


def test_publish_makes_a_complete_version_current(tmp_path):
    layout = VersionLayout(tmp_path)
    assert layout.current() is None
    vid = publish(layout, _stage(layout, "r1", 3), {"as_of_ms": 1}, keep=5)
    assert vid == "v000001" and layout.current() == vid
    manifest = layout.manifest(vid)
    assert manifest["as_of_ms"] == 1
    assert manifest["checksums"]["item_stats"] == view_checksum(layout.view_dir(vid, "item_stats"))
    assert not (tmp_path / "_staging" / "r1").exists()


def test_a_run_killed_before_the_rename_leaves_the_previous_version_current(tmp_path):
    layout = VersionLayout(tmp_path)
    v1 = publish(layout, _stage(layout, "r1", 3), {"as_of_ms": 1}, keep=5)
    dead, dead_lock = open_staging(layout, "r2")
    (dead / "item_stats").mkdir()
    dead_lock.close()  # the run died: its lock is released
    live, live_lock = open_staging(layout, "r3")  # a concurrent run still writing
    assert layout.current() == v1
    assert layout.list_versions() == [v1]
    assert clean_stale_staging(layout) == ["r2"]
    assert not dead.exists() and live.exists()
    live_lock.close()


def test_a_staging_directory_missing_a_view_is_not_published(tmp_path):
    from lambdastack.errors import DataError

    layout = VersionLayout(tmp_path)
    with pytest.raises(DataError, match=r"lacks the views \['model'\]"):
        publish(layout, _stage(layout, "r1", 3), {}, keep=5, expected={"item_stats", "model"})
    assert layout.current() is None and layout.list_versions() == []


def test_a_version_without_a_manifest_is_not_listed(tmp_path):
    layout = VersionLayout(tmp_path)
    (layout.versions_dir / "v000007").mkdir(parents=True)
    assert layout.list_versions() == []
    with pytest.raises(NoVersionError):
        layout.set_current("v000007")


def test_same_content_same_checksum_whatever_the_file_names(tmp_path):
    layout = VersionLayout(tmp_path)
    a = publish(layout, _stage(layout, "r1", 3), {}, keep=5)
    b = publish(layout, _stage(layout, "r2", 3), {}, keep=5)
    (layout.view_dir(b, "item_stats") / "part-0.parquet").rename(
        layout.view_dir(b, "item_stats") / "x.parquet"
    )
    assert view_checksum(layout.view_dir(a, "item_stats")) == view_checksum(layout.view_dir(b, "item_stats"))


def test_old_versions_are_collected_but_never_the_current_one(tmp_path):
    layout = VersionLayout(tmp_path)
    for n in range(4):
        publish(layout, _stage(layout, f"r{n}", n + 1), {}, keep=2)
    assert layout.list_versions() == ["v000003", "v000004"]
    assert sorted(p.name for p in layout.versions_dir.iterdir()) == ["v000003", "v000004"]
    assert list((tmp_path / "_trash").iterdir()) == []
    layout.set_current("v000003")
    assert collect_garbage(layout, keep=1) == []
    assert json.loads((layout.version_dir("v000003") / "manifest.json").read_text())["checksums"]


def test_version_numbers_skip_a_concurrently_taken_number(tmp_path):
    layout = VersionLayout(tmp_path)
    publish(layout, _stage(layout, "r1", 1), {}, keep=5)
    (layout.versions_dir / "v000002").mkdir()
    (layout.versions_dir / "v000002" / "x").write_text("another run")
    assert publish(layout, _stage(layout, "r2", 1), {}, keep=5) == "v000003"
