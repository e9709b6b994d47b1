"""The batch slice on real Spark: master dataset -> views -> an atomically published version."""

from __future__ import annotations

from collections import Counter, defaultdict

import pyarrow.parquet as pq
import pytest

from batch.job import run
from batch.master import append, write_catalogue
from lambdastack.datasets.synthetic import generate
from lambdastack.errors import DataError
from lambdastack.events import EVENT_TYPES
from lambdastack.versions import VersionLayout

pytestmark = pytest.mark.integration
DAY = 86_400_000
START = 1_767_225_600_000  # 2026-01-01


def _load(isolated, n_events=3000):
    s = isolated.settings
    events, items = generate(n_users=40, n_items=60, n_events=n_events, seed=11, start_ms=START, days=4)
    append(events, s.path(s.data.master_dir))
    append(events.slice(0, 500), s.path(s.data.master_dir))  # a reloaded file: duplicates by event_id
    write_catalogue(items, s.path(s.data.catalogue_dir))
    return events


def test_views_match_the_master_dataset_before_the_as_of(isolated):
    events = _load(isolated)
    as_of = START + 3 * DAY
    vid = run(isolated.settings, as_of_ms=as_of + 1234, echo=lambda _m: None)
    layout = VersionLayout(isolated.settings.path(isolated.settings.data.views_dir))
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
    assert manifest["rows"]["items"] == 60
    assert set(manifest["checksums"]) == {"item_stats", "user_history", "items"}


def test_a_rerun_with_the_same_as_of_publishes_identical_views(isolated):
    _load(isolated, n_events=1500)
    a = run(isolated.settings, as_of_ms=START + 2 * DAY, echo=lambda _m: None)
    b = run(isolated.settings, as_of_ms=START + 2 * DAY, echo=lambda _m: None)
    layout = VersionLayout(isolated.settings.path(isolated.settings.data.views_dir))
    assert a != b and layout.current() == b
    assert layout.manifest(a)["checksums"] == layout.manifest(b)["checksums"]


def test_no_event_before_the_as_of_is_a_sentence(isolated):
    _load(isolated, n_events=500)
    with pytest.raises(DataError, match="has no event before the as-of"):
        run(isolated.settings, as_of_ms=START - DAY, echo=lambda _m: None)
