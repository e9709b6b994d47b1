import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch.publish import publish
from lambdastack.errors import DataError, NoVersionError
from lambdastack.registry import history, history_file, promote, record, rollback
from lambdastack.versions import MANIFEST, VersionLayout
from tools.cli import main

pytestmark = pytest.mark.unit


def _publish(layout: VersionLayout, n: int, keep: int = 10) -> str:
    staging = layout.staging(f"r{n}")
    (staging / "item_stats").mkdir(parents=True)
    pq.write_table(
        pa.table({"item_id": [f"i{k}" for k in range(n + 1)]}), staging / "item_stats" / "p.parquet"
    )
    return publish(layout, staging, {"as_of_ms": n, "input": {"events": n + 1}}, keep=keep)


def _layout_with(tmp_path, versions: int) -> VersionLayout:
    layout = VersionLayout(tmp_path / "views")
    for n in range(versions):
        _publish(layout, n)
    return layout


def test_promote_makes_an_older_version_current(tmp_path):
    layout = _layout_with(tmp_path, 3)
    change = promote(layout, "v000001")
    assert layout.current() == "v000001"
    assert (change.action, change.version, change.previous) == ("promote", "v000001", "v000003")
    promote(layout, "v000003")
    assert layout.current() == "v000003"


def test_rollback_goes_to_the_newest_complete_version_older_than_the_current(tmp_path):
    layout = _layout_with(tmp_path, 4)
    (layout.version_dir("v000003") / MANIFEST).unlink()  # an incomplete version is never a target
    change = rollback(layout)
    assert layout.current() == "v000002"
    assert (change.action, change.version, change.previous) == ("rollback", "v000002", "v000004")
    assert rollback(layout).version == "v000001"
    promote(layout, "v000004")
    promote(layout, "v000002")
    assert rollback(layout).version == "v000001"  # older than the current, not the one before in time


def test_rollback_with_nothing_older_is_a_sentence(tmp_path):
    layout = _layout_with(tmp_path, 2)
    promote(layout, "v000001")
    with pytest.raises(NoVersionError, match="no complete version older than the current v000001"):
        rollback(layout)
    assert layout.current() == "v000001"
    with pytest.raises(NoVersionError, match="no batch version is published"):
        rollback(VersionLayout(tmp_path / "empty"))


def test_promote_of_a_missing_version_is_a_sentence(tmp_path):
    layout = _layout_with(tmp_path, 2)
    with pytest.raises(NoVersionError, match="version v000009 is not a complete published version"):
        promote(layout, "v000009")
    (layout.versions_dir / "v000005").mkdir()  # a directory without a manifest
    with pytest.raises(NoVersionError, match="version v000005 is not a complete published version"):
        promote(layout, "v000005")
    with pytest.raises(NoVersionError, match="'latest' is not a version id"):
        promote(layout, "latest")
    assert layout.current() == "v000002"


def test_history_records_every_change_of_current(tmp_path):
    layout = _layout_with(tmp_path, 3)
    promote(layout, "v000001")
    promote(layout, "v000003")
    rollback(layout)
    lines = [json.loads(line) for line in history_file(layout).read_text().splitlines()]
    assert [(x["action"], x["version"], x["previous"]) for x in lines] == [
        ("publish", "v000001", None),
        ("publish", "v000002", "v000001"),
        ("publish", "v000003", "v000002"),
        ("promote", "v000001", "v000003"),
        ("promote", "v000003", "v000001"),
        ("rollback", "v000002", "v000003"),
    ]
    assert all(set(x) == {"at_ms", "action", "version", "previous"} for x in lines)
    stamps = [x["at_ms"] for x in lines]
    assert stamps == sorted(stamps) and all(isinstance(t, int) for t in stamps)
    assert [c.version for c in history(layout)] == [x["version"] for x in lines]


def test_a_torn_history_line_is_kept_apart_and_named(tmp_path):
    layout = _layout_with(tmp_path, 1)
    with open(history_file(layout), "a") as f:
        f.write('{"at_ms": 1, "action": "prom')  # a write cut short by a crash
    assert [c.action for c in history(layout)] == ["publish"]  # not a change yet
    record(layout, "promote", "v000001", "v000001")
    assert history_file(layout).read_text().splitlines()[-1].startswith('{"at_ms":')
    with pytest.raises(DataError, match="HISTORY line 2 is not a change record"):
        history(layout)


def test_cli_promote_and_rollback(tmp_path, monkeypatch, capsys):
    layout = _layout_with(tmp_path, 3)
    monkeypatch.setenv("LAMBDASTACK_DATA__VIEWS_DIR", str(layout.views_dir))
    assert main(["registry", "rollback"]) == 0
    assert capsys.readouterr().out == "current version: v000002 (was v000003)\n"
    assert main(["registry", "promote", "v000003"]) == 0
    assert capsys.readouterr().out == "current version: v000003 (was v000002)\n"
    assert main(["registry", "list"]) == 0
    assert "* v000003" in capsys.readouterr().out
    assert main(["registry", "promote", "v000042"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lambdastack: version v000042 is not a complete published version")
    assert "Traceback" not in err
    assert layout.current() == "v000003"


def test_cli_rollback_with_nothing_older_exits_1_with_a_sentence(tmp_path, monkeypatch, capsys):
    layout = _layout_with(tmp_path, 1)
    monkeypatch.setenv("LAMBDASTACK_DATA__VIEWS_DIR", str(layout.views_dir))
    assert main(["registry", "rollback"]) == 1
    assert "there is no complete version older than the current v000001" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", [["registry", "promote"], ["registry", "rollback"]], ids=" ".join)
def test_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([*cmd, "--help"])
    assert e.value.code == 0
    assert f"usage: lambdastack {' '.join(cmd)}" in capsys.readouterr().out


def _with_model(layout: VersionLayout, vid: str, model: bytes) -> None:
    path = layout.model_file(vid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model)


def _model_of_width(width: int) -> bytes:
    import numpy as np
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(0).normal(size=(50, width))
    clf = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    onnx = convert_sklearn(
        clf,
        initial_types=[("features", FloatTensorType([None, width]))],
        options={id(clf): {"zipmap": False}},
        target_opset=17,
    )
    return onnx.SerializeToString()


def test_promote_and_rollback_refuse_a_model_that_cannot_serve(tmp_path):
    from lambdastack.features import FEATURE_NAMES

    layout = _layout_with(tmp_path, 3)  # v000003 current
    _with_model(layout, "v000001", b"not an onnx model")
    _with_model(layout, "v000002", _model_of_width(len(FEATURE_NAMES) + 1))
    for vid, reason in (("v000001", "cannot serve"), ("v000002", f"takes {len(FEATURE_NAMES) + 1} features")):
        with pytest.raises(DataError, match=f"the model of version {vid} cannot serve.*{reason}|{reason}"):
            promote(layout, vid)
        assert layout.current() == "v000003"
    with pytest.raises(DataError, match="v000002"):
        rollback(layout)  # the newest older version's model is the wrong width
    assert layout.current() == "v000003" and [c.action for c in history(layout)].count("promote") == 0
    _with_model(layout, "v000002", _model_of_width(len(FEATURE_NAMES)))
    assert promote(layout, "v000002").version == "v000002"


def test_a_version_naming_a_missing_model_is_refused(tmp_path):
    layout = _layout_with(tmp_path, 2)
    manifest = layout.version_dir("v000001") / MANIFEST
    manifest.write_text(
        json.dumps({**json.loads(manifest.read_text()), "model": {"file": "model/ranker.onnx"}})
    )
    with pytest.raises(DataError, match="names a model but .* is missing"):
        promote(layout, "v000001")
    assert layout.current() == "v000002"
