"""The batch layer on real Spark: views, embeddings, profiles, candidates and a ranking model
from the master dataset, published atomically; offline/online feature agreement; batch predict."""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pyarrow.parquet as pq
import pytest

from batch import training
from batch.embeddings import ItemVectors
from batch.job import VIEWS, _read_events, run
from batch.predict import predict
from batch.session import spark_session
from lambdastack.errors import DataError
from lambdastack.events import EVENT_TYPES, Event
from lambdastack.features import FEATURE_NAMES
from lambdastack.published import PublishedVersion
from lambdastack.settings import load_settings
from lambdastack.versions import VersionLayout
from serving import served_version
from serving.feed import FeedConfig
from serving.predict import Parsed, feature_rows
from tests.conftest import Isolated, make_isolated
from tests.integration.conftest import SharedVersion
from tests.integration.helpers import load_synthetic
from tests.unit.test_neighbours import Ev, covisit_reference

pytestmark = pytest.mark.integration
DAY = 86_400_000
START = 1_767_225_600_000  # 2026-01-01


@dataclass(frozen=True)
class Published:
    iso: Isolated
    events: Any
    vid: str  # the current version
    as_of_ms: int  # its as-of (the run was given one off the bucket: this is it floored)
    shared: SharedVersion


@pytest.fixture(scope="module")
def published(shared_version: SharedVersion) -> Published:
    """The session's synthetic world (its first 500 events loaded twice: duplicates by event_id)
    and its newer version, as of 2 hours ago plus 1234 ms."""
    sv = shared_version
    asked = sv.asked_as_of_ms[-1]
    as_of = asked - asked % (sv.iso.settings.batch.bucket_s * 1000)
    assert sv.duplicates == 500 and asked != as_of
    return Published(sv.iso, sv.events, sv.versions[-1], as_of, sv)


def _layout(iso: Isolated) -> VersionLayout:
    return VersionLayout(iso.settings.path(iso.settings.data.views_dir))


def test_aggregate_views_match_the_master_dataset_before_the_as_of(published: Published):
    iso, events, vid, as_of = published.iso, published.events, published.vid, published.as_of_ms
    layout = _layout(iso)
    assert layout.current() == vid
    manifest = layout.manifest(vid)
    assert manifest["as_of_ms"] == as_of  # floored to the bucket
    rows = [r for r in events.to_pylist() if int(r["event_time"].timestamp() * 1000) < as_of]
    assert manifest["input"]["events"] == len(rows)
    expected = Counter(r["item_id"] for r in rows)
    by_type = Counter((r["item_id"], r["type"]) for r in rows)
    stats = pq.read_table(layout.view_dir(vid, "item_stats")).to_pylist()
    assert {r["item_id"]: r["events"] for r in stats} == dict(expected)
    for r in stats:
        assert all(r[t] == by_type[(r["item_id"], t)] for t in EVENT_TYPES)
    history = defaultdict(set)
    for r in rows:
        history[r["user_id"]].add(r["item_id"])
    got = {r["user_id"]: r["items"] for r in pq.read_table(layout.view_dir(vid, "user_history")).to_pylist()}
    assert got == {u: sorted(v) for u, v in history.items()}
    assert set(manifest["checksums"]) == VIEWS


def test_embeddings_neighbours_profiles_and_candidates(published: Published):
    iso, vid, n_items = published.iso, published.vid, published.shared.world["n_items"]
    layout = _layout(iso)
    emb = pq.read_table(layout.view_dir(vid, "item_embeddings")).to_pylist()
    assert len(emb) == n_items
    vectors = np.array([r["vector"] for r in emb])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    neigh = {r["item_id"]: r for r in pq.read_table(layout.view_dir(vid, "item_neighbours")).to_pylist()}
    # co-visitation over the (unique) events before the as-of, as the reference states it
    as_of, s = published.shared.layout.manifest(vid)["as_of_ms"], iso.settings.batch
    before = [
        Ev(r["event_id"], r["user_id"], r["item_id"], r["type"], round(r["event_time"].timestamp() * 1000))
        for r in published.events.to_pylist()
    ]
    expected = covisit_reference([e for e in before if e.t < as_of], s.covisit_window, s.neighbours_n)
    assert len(expected) == n_items and set(neigh) == set(expected)  # every item has interactions
    for item, (ids, scores) in expected.items():
        assert neigh[item]["kind"] == "covisit" and neigh[item]["neighbours"] == ids
        assert neigh[item]["scores"] == pytest.approx(scores, rel=0, abs=1e-9)
    prof = {r["user_id"]: r for r in pq.read_table(layout.view_dir(vid, "user_profiles")).to_pylist()}
    seen = {
        r["user_id"]: set(r["items"]) for r in pq.read_table(layout.view_dir(vid, "user_history")).to_pylist()
    }
    assert set(prof) == set(seen)
    some = next(iter(prof.values()))
    assert some["cluster"] is not None and len(some["top_genres"]) >= 1 and some["n"] >= 1
    for c in pq.read_table(layout.view_dir(vid, "candidates")).to_pylist():
        assert c["items"] and not set(c["items"]) & seen[c["user_id"]]
        assert c["scores"] == sorted(c["scores"], reverse=True)
    scopes = {r["scope"] for r in pq.read_table(layout.view_dir(vid, "popular")).to_pylist()}
    assert "global" in scopes and any(s.startswith("cluster:") for s in scopes)


def test_model_metrics_and_onnx_file(published: Published):
    iso, vid = published.iso, published.vid
    layout = _layout(iso)
    metrics = layout.manifest(vid)["model"]["metrics"]
    assert metrics["features"] == list(FEATURE_NAMES)
    assert metrics["onnx_max_abs_diff"] <= 1e-4
    assert metrics["rows"]["train"] > 0 and metrics["rows"]["validation"] > 0
    assert 0.0 < metrics["pool_ndcg@10"] <= 1.0
    assert 0 < metrics["queries"]["in_pool"] <= metrics["queries"]["sampled"]
    assert layout.manifest(vid)["model"]["retrieval"] == {"recent_n": 20, "decay": 0.9, "session_s": 1800}
    sess = onnxruntime.InferenceSession(str(layout.version_dir(vid) / "model" / "ranker.onnx"))
    assert sess.get_inputs()[0].name == "features"


def test_offline_training_features_equal_online_features(published: Published):
    """Spark-built pools of (user, t) for t after an as-of hold what the API's predict computes for
    the same candidates from the version published at that as-of plus the events since: the same
    state, counts, live counts and kNN evidence (the version's neighbours are those the training
    set fits before its window)."""
    # the older version (as of 3 days ago): the world's events go on for two days after it
    iso, events, vid = published.iso, published.events, published.shared.versions[0]
    s = iso.settings
    snap = served_version.load(PublishedVersion(_layout(iso), vid), s.serving.ab)
    view = snap.view
    as_of = _layout(iso).manifest(vid)["as_of_ms"]
    spark = spark_session(s)
    later = published.shared.world["start_ms"] + published.shared.world["days"] * DAY
    all_before = _read_events(spark, s.path(s.data.master_dir), later)
    vectors = ItemVectors(sorted(view.side.vectors), np.zeros(0), np.zeros(0), np.zeros(0))
    b = s.batch
    offline = training.training_set(
        spark,
        all_before,
        vectors,
        view.side,
        as_of,
        400,
        training.PoolConfig.from_settings(s),
        b.covisit_window,
        b.neighbours_n,
    )
    assert offline.answered >= 10 and offline.rows["label"].sum() == offline.answered
    stream = sorted(
        (
            Event(
                r["event_id"],
                r["user_id"],
                r["item_id"],
                r["type"],
                r["value"],
                int(r["event_time"].timestamp() * 1000),
            )
            for r in events.to_pylist()
        ),
        key=lambda e: (e.event_time_ms, e.event_id),
    )
    cfg = FeedConfig.from_settings(s.serving)
    for qid, pool in list(offline.rows.groupby("qid"))[:25]:
        user, t = pool["user_id"].iloc[0], int(pool["t"].iloc[0])
        since = [
            e for e in stream if as_of <= e.event_time_ms < t or (e.event_time_ms == t and e.event_id < qid)
        ]
        mine = [e for e in since if e.user_id == user]
        live = Counter(e.item_id for e in since if e.event_time_ms < t)  # every live event strictly before t
        parsed = [Parsed(pair=(user, i)) for i in pool["item_id"]]
        online = feature_rows(snap, parsed, ({user: mine}, live), t, cfg)
        expected = pool[list(FEATURE_NAMES)].to_numpy()
        assert np.allclose(online, expected, rtol=0, atol=1e-9), (qid, online - expected)


def test_the_spark_event_weight_equals_event_weight(published: Published):
    """batch.embeddings.weight_col (Spark) gives lambdastack.features.event_weight of every event."""
    from batch.embeddings import weight_col
    from lambdastack.features import event_weight

    spark = spark_session(published.iso.settings)
    rows = [(t, v) for t in (*EVENT_TYPES, "unknown") for v in (-3.0, 0.0, 1.0, 2.5, 4.5, 90.0, 300.0)]
    got = spark.createDataFrame(rows, "type string, value double").select(weight_col().alias("w"))
    assert [r["w"] for r in got.collect()] == [event_weight(t, v) for t, v in rows]


def test_a_version_sees_only_the_tags_written_before_its_as_of(published: Published):
    """batch.views.catalogue_as_of: undated tags stay, dated ones count only strictly before the as-of."""
    from batch.views import catalogue_as_of

    spark = spark_session(published.iso.settings)
    catalogue = spark.createDataFrame(
        [("a", ["old"]), ("b", None), ("c", [])], "item_id string, tags array<string>"
    )
    dated = spark.createDataFrame(
        [("a", "x", 999), ("a", "old", 5), ("a", "late", 1000), ("b", "y", 1), ("zz", "q", 1)],
        "item_id string, tag string, t long",
    ).selectExpr("item_id", "tag", "timestamp_millis(t) AS tagged_at")
    got = {r["item_id"]: r["tags"] for r in catalogue_as_of(catalogue, dated, 1000).collect()}
    assert got == {"a": ["old", "x"], "b": ["y"], "c": []}
    assert catalogue_as_of(catalogue, None, 1000) is catalogue


def test_batch_predict_scores_every_line_or_reports_its_error(published: Published, tmp_path):
    iso, vid = published.iso, published.vid
    good = {f: 0.5 for f in FEATURE_NAMES}
    lines = [
        json.dumps({**good, "id": "a"}),
        "not json",
        json.dumps({**good, "item_pop": "x", "id": "c"}),
        json.dumps({**good, "id": "d", "item_pop": 3.0}),
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n")
    summary = predict(iso.settings, src, tmp_path / "out", echo=lambda _m: None)
    assert summary == {"version": vid, "lines": 4, "predictions": 2, "errors": 2}

    def read(d: Path) -> list[dict]:
        return [json.loads(x) for f in sorted(d.glob("part-*.json")) for x in f.read_text().splitlines()]

    preds, errors = read(tmp_path / "out" / "predictions"), read(tmp_path / "out" / "errors")
    assert [(p["line"], p["id"]) for p in preds] == [(1, "a"), (4, "d")]
    assert all(math.isfinite(p["score"]) for p in preds)  # LambdaRank scores: finite, unbounded
    assert [(e["line"], e["error"].split(":")[0]) for e in errors] == [(2, "<line>"), (3, "item_pop")]


def test_a_rerun_with_the_same_as_of_publishes_identical_views(published: Published, tmp_path):
    first = published.vid
    views = published.shared.copy_views(tmp_path / "views")  # the session's views stay as they are
    settings = load_settings(environ={**published.iso.env, "LAMBDASTACK_DATA__VIEWS_DIR": str(views)})
    again = run(settings, as_of_ms=published.as_of_ms, echo=lambda _m: None)
    layout = VersionLayout(views)
    assert again != first and layout.current() == again
    assert layout.manifest(first)["checksums"] == layout.manifest(again)["checksums"]


def test_no_event_before_the_as_of_is_a_sentence(base_env, tmp_path):
    iso = make_isolated(base_env, tmp_path)
    load_synthetic(iso.settings, n_users=5, n_items=5, n_events=50, seed=1, start_ms=START, days=1)
    with pytest.raises(DataError, match="has no event before the as-of"):
        run(iso.settings, as_of_ms=START - DAY, echo=lambda _m: None)
