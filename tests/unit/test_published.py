"""lambdastack.published: the one reader of a version, and the speed and serving views built from it
agreeing on what they share."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lambdastack.features import FEATURE_NAMES
from lambdastack.published import PROFILE_COLUMNS, PublishedVersion
from lambdastack.versions import MANIFEST, MODEL_FILE, VersionLayout
from serving import batch_view
from speed import baseline, scoring_view

pytestmark = pytest.mark.unit
AS_OF = 10 * 3_600_000
ITEMS = ["a", "b", "c", "d"]


def _view(vdir, name, columns):
    (vdir / name).mkdir(parents=True)
    pq.write_table(pa.table(columns), vdir / name / "part-0.parquet")


def _model() -> bytes:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    x = rng.normal(size=(100, len(FEATURE_NAMES)))
    model = convert_sklearn(
        LogisticRegression().fit(x, (x[:, 0] > 0).astype(int)),
        initial_types=[("features", FloatTensorType([None, len(FEATURE_NAMES)]))],
        options={"zipmap": False},
        target_opset=17,
    )
    return model.SerializeToString()


def _publish(layout: VersionLayout, vid: str, model: bytes | None, **manifest) -> None:
    vdir = layout.version_dir(vid)
    first = [AS_OF - 50, AS_OF - 40, None, AS_OF - 1]
    _view(vdir, "item_stats", {"item_id": ITEMS, "events": [3, 9, 1, 5], "first_event_ms": first})
    _view(
        vdir,
        "items",
        {"item_id": ITEMS, "title": ["A", "", "C", None], "genres": [["x"], ["y"], None, ["x"]]},
    )
    _view(
        vdir,
        "item_embeddings",
        {
            "item_id": ITEMS[:3],
            "content": [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]],
            "als": [[0.5, 2.0, 1.0], None, [1.0, 0.0, 0.0]],
        },
    )
    _view(vdir, "item_neighbours", {"item_id": ["a", "b"], "neighbours": [["b", "c"], None]})
    _view(vdir, "popular", {"scope": ["global", "cluster:0"], "items": [["b", "d"], ["a"]]})
    _view(
        vdir,
        "user_profiles",
        {
            "user_id": ["u1", "u2"],
            "n": [3, 1],
            "interest": [[0.5, 0.5], None],
            "t_ref": [AS_OF - 10, AS_OF - 5],
            "genre_names": [["x", "y"], []],
            "genre_counts": [[2, 1], []],
            "last_item": ["b", "c"],
            "last_t": [AS_OF - 10, AS_OF - 5],
            "als": [[1.0, 1.0, 1.0], None],
            "cluster": [0, 1],
        },
    )
    _view(vdir, "user_history", {"user_id": ["u1", "u2"], "items": [["a", "b"], ["c"]]})
    _view(vdir, "candidates", {"user_id": ["u1"], "items": [["d", "c"]]})
    if model is not None:
        (vdir / MODEL_FILE).parent.mkdir()
        (vdir / MODEL_FILE).write_bytes(model)
    (vdir / MANIFEST).write_text(json.dumps({"as_of_ms": AS_OF, "input": {"min_event_ms": 0}, **manifest}))


def test_the_reader_reads_every_artifact_of_a_version(tmp_path):
    layout, model = VersionLayout(tmp_path), _model()
    _publish(layout, "v000001", model)
    p = PublishedVersion(layout, "v000001")
    assert layout.model_file("v000001") == tmp_path / "versions" / "v000001" / "model" / "ranker.onnx"
    assert p.as_of_ms == AS_OF and p.model() == model
    assert p.item_counts() == {"a": 3, "b": 9, "c": 1, "d": 5}
    assert p.titles() == {"a": "A", "c": "C"}
    side = p.item_side()
    assert list(side.vectors) == ["a", "b", "c"] and side.vectors["c"].tolist() == [1.0, 1.0]
    assert side.genres == {"a": ["x"], "b": ["y"], "c": [], "d": ["x"]}
    assert {i: f.tolist() for i, f in side.als.items()} == {"a": [0.5, 2.0, 1.0], "c": [1.0, 0.0, 0.0]}
    assert side.first_ms == {"a": AS_OF - 50, "b": AS_OF - 40, "d": AS_OF - 1}
    assert p.neighbours() == {"a": ("b", "c"), "b": ()}
    assert p.popular() == {"global": ("b", "d"), "cluster:0": ("a",)}
    assert p.profile_table().column_names == list(PROFILE_COLUMNS)
    assert p.profile_table(["cluster", "top_tags"]).column_names == [*PROFILE_COLUMNS, "cluster"]
    assert p.user_lists("user_history").to_pydict() == {"user_id": ["u1", "u2"], "items": [["a", "b"], ["c"]]}
    assert p.user_lists("candidates").to_pydict() == {"user_id": ["u1"], "items": [["d", "c"]]}
    assert p.user_lists("absent") is None
    x = np.zeros((2, len(FEATURE_NAMES)))
    x[0, 0] = 3.0
    p_pos = p.ranker().predict(x)
    assert p_pos.dtype == np.float64 and p_pos[0] > p_pos[1]


def test_absent_views_read_empty_and_the_feature_baseline_prefers_the_manifest(tmp_path):
    layout = VersionLayout(tmp_path)
    in_manifest = {"item_pop": {"edges": [1.0], "proportions": [0.5, 0.5]}}
    _publish(layout, "v000001", None, feature_baseline=in_manifest)
    _publish(layout, "v000002", None)
    (layout.version_dir("v000002") / "feature_baseline.json").write_text(json.dumps({"recency": {}}))
    _publish(layout, "v000003", None)
    assert PublishedVersion(layout, "v000001").feature_baseline() == in_manifest
    assert PublishedVersion(layout, "v000002").feature_baseline() == {"recency": {}}
    p = PublishedVersion(layout, "v000003")
    assert p.feature_baseline() == {} and p.model() is None and p.ranker() is None
    assert p.table("no_such_view", ["item_id"]) is None and p.rows("no_such_view", ["item_id"]) == []


def test_neighbour_scores_are_aligned_with_the_neighbours_and_absent_in_older_versions(tmp_path):
    layout = VersionLayout(tmp_path)
    _publish(layout, "v000001", None)  # item_neighbours without scores or kind (an older version)
    old = PublishedVersion(layout, "v000001")
    assert old.neighbour_scores() == {"a": (), "b": ()}
    _publish(layout, "v000002", None)
    vdir = layout.version_dir("v000002")
    for f in (vdir / "item_neighbours").iterdir():
        f.unlink()
    columns = {
        "item_id": ["a", "b", "d"],
        "neighbours": [["b", "c"], ["a"], ["a", "b"]],
        "scores": [[0.5, 0.25], [0.5], [0.9, 0.1]],
        "kind": ["covisit", "covisit", "content"],
    }
    pq.write_table(pa.table(columns), vdir / "item_neighbours" / "part-0.parquet")
    p = PublishedVersion(layout, "v000002")
    assert p.neighbours() == {"a": ("b", "c"), "b": ("a",), "d": ("a", "b")}
    assert p.neighbour_scores() == {"a": (0.5, 0.25), "b": (0.5,), "d": (0.9, 0.1)}


def test_speed_and_serving_read_the_same_version_the_same_way(tmp_path):
    layout = VersionLayout(tmp_path)
    _publish(layout, "v000001", _model())
    neighbours = {"item_id": ["a", "b"], "neighbours": [["b", "c"], None], "scores": [[0.5, 0.25], None]}
    pq.write_table(pa.table(neighbours), layout.view_dir("v000001", "item_neighbours") / "part-0.parquet")
    p = PublishedVersion(layout, "v000001")
    speed, served = scoring_view.load(p), batch_view.load(p)
    assert speed.version == served.version == "v000001" and speed.as_of_ms == served.as_of_ms == AS_OF
    assert dict(speed.counts) == {str(i): served.count(str(i)) for i in served.item_ids}
    assert list(served.item_ids) == ["b", "d", "a", "c"]  # most engaged first
    knn, ids = served.knn, served.matrix.ids
    lists = {
        i: tuple(ids[c] for c in knn.cols[knn.indptr[r] : knn.indptr[r + 1]]) for i, r in knn.index.items()
    }
    assert {i: v for i, v in speed.neighbours.items() if v} == {i: v for i, v in lists.items() if v}
    assert speed.side.genres == served.side.genres
    assert {i: v.tolist() for i, v in speed.side.vectors.items()} == {
        i: v.tolist() for i, v in served.side.vectors.items()
    }
    for user in ("u1", "u2", "nobody"):
        a, b = speed.user_state(user), served.user_state(user)
        assert (a.n, a.t_ref, a.genres, a.last_item, a.last_t) == (
            b.n,
            b.t_ref,
            b.genres,
            b.last_item,
            b.last_t,
        )
        assert (a.interest is None) == (b.interest is None)
        assert (None if a.als is None else a.als.tolist()) == (None if b.als is None else b.als.tolist())
        assert speed.history.get(user) == served.history.get(user)
    assert served.user_state("u1").als.tolist() == [1.0, 1.0, 1.0] and served.user_state("u2").als is None
    np.testing.assert_array_equal(speed.matrix.als, served.matrix.als)
    np.testing.assert_array_equal(speed.matrix.first_ms, served.matrix.first_ms)
    assert (served.matrix.als[:5] @ served.user_state("u1").als).tolist() == [3.5, 0.0, 1.0, 0.0, 0.0]
    assert (
        served.history["u1"] == frozenset({"a", "b"})
        and served.cluster_of("u1", served.user_state("u1")) == 0
    )
    assert served.popular() == ("b", "d") and served.titles == {"a": "A", "c": "C"}
    assert speed.ranker is not None
    rates = baseline.load(p)
    assert rates.version == "v000001" and rates.rates_per_hour == {"a": 0.3, "b": 0.9, "c": 0.1, "d": 0.5}
