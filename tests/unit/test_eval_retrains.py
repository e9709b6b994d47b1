"""tools.evaluation.retrains: where the retrains fall, and how the replay switches every variant to
each new version (a fake build stands in for the batch job; no Spark)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from lambdastack.errors import DataError
from lambdastack.keys import KeyLayout
from lambdastack.settings import load_settings
from lambdastack.speedview import FRESH_FIELD, RECENT_FIELD
from serving.served_version import ServedVersion
from tests.unit.test_eval_replay import AS_OF, ITEMS, H, ev, scorer, served_version, variants
from tools.cli import main
from tools.evaluation.replay import replay
from tools.evaluation.retrains import Retrainer, boundaries, events_before, record
from tools.evaluation.speedstate import SpeedState
from tools.evaluation.split import Split
from tools.evaluation.variants import MERGED, SPEED_ONLY, Loaded, switch

pytestmark = pytest.mark.unit
DAY = 24 * H


def loaded_as_of(as_of_ms: int, version: str) -> Loaded:
    """Another version of the hand-made world: later as-of, popularity reversed."""
    full = served_version()
    view = dataclasses.replace(
        full.view, version=version, as_of_ms=as_of_ms, popular_lists={"global": tuple(reversed(ITEMS))}
    )
    score = dataclasses.replace(scorer(view), version=version, as_of_ms=as_of_ms, neighbours={})
    return Loaded(ServedVersion(view, None), score, {i: 0.5 for i in ITEMS})


def test_boundaries_split_the_replayed_period_into_k_plus_one_bucket_aligned_parts():
    last = AS_OF + 10 * DAY + 5 * 60_000
    at = boundaries(AS_OF, last, 4, 3600)
    assert len(at) == 4
    assert all(b % H == 0 for b in at)
    assert AS_OF < at[0] < at[1] < at[2] < at[3] < last
    # 10 days and 5 minutes in 5 parts: every 2 days and 1 minute, floored to the hour
    assert at == tuple(AS_OF + j * 2 * DAY for j in range(1, 5))
    assert boundaries(AS_OF, last, 0, 3600) == ()


def test_the_last_boundary_stays_before_the_last_event_and_each_after_the_previous():
    assert boundaries(AS_OF, AS_OF + 3 * H, 2, 3600) == (AS_OF + H, AS_OF + 2 * H)
    assert boundaries(AS_OF, AS_OF + 3 * H + 1, 2, 3600) == (AS_OF + H, AS_OF + 2 * H)


def test_more_retrains_than_the_period_holds_buckets_is_a_sentence():
    with pytest.raises(DataError, match=r"--retrains 3: the replayed period \(3.0 h .*fewer retrains"):
        boundaries(AS_OF, AS_OF + 3 * H, 3, 3600)
    with pytest.raises(DataError, match="--retrains 1"):
        boundaries(AS_OF, AS_OF, 1, 3600)  # every replayed event at the cut
    with pytest.raises(DataError, match="0 or more"):
        boundaries(AS_OF, AS_OF + DAY, -1, 3600)


def test_eval_replay_rejects_negative_retrains(tmp_path, capsys):
    args = ["eval", "replay", str(tmp_path), "--json", str(tmp_path / "e.json"), "--retrains", "-2"]
    assert main(args) == 1
    assert "--retrains must be 0 or more, not -2" in capsys.readouterr().err


def test_events_before_counts_history_and_the_replayed_events_strictly_before():
    split = Split(
        AS_OF, (ev(0, "a", "i0", AS_OF - 5),), tuple(ev(n, "a", "i1", AS_OF + n) for n in range(1, 6))
    )
    assert [events_before(split, AS_OF + d) for d in (0, 1, 3, 6)] == [1, 1, 3, 6]


def test_switch_moves_every_variant_to_the_new_version_and_keeps_the_speed_state():
    v = variants(k=3)
    keys = KeyLayout(load_settings(environ={}).redis.key_prefix)
    v.state.apply(ev(1, "u", "i3", AS_OF + 10))
    recent = v.state.store(MERGED).hash(keys.user("u"))[RECENT_FIELD]
    assert v.state.store(MERGED).zset(keys.since(AS_OF)) == {"i3": 1.0}
    new = switch(v, loaded_as_of(AS_OF + 2 * H, "v000002"))
    assert new.version == "v000002" and new.empty.version == "v000002"
    assert new.empty.view.count("i0") == 0  # speed_only's version is the new one, emptied
    assert new.popularity("x", AS_OF + 3 * H)[0][0] == ITEMS[-1]
    assert new.state is v.state  # what the speed layer wrote stays
    assert new.state.store(MERGED).hash(keys.user("u"))[RECENT_FIELD] == recent
    # later events are scored with the new version's views, as a speed state built on it scores them
    fresh = SpeedState(load_settings(environ={}), loaded_as_of(AS_OF + 2 * H, "v000002").scorers(), {})
    for state in (new.state, fresh):
        state.apply(ev(2, "w", "i5", AS_OF + 3 * H))
    # the live total since the new as-of is started at the switch and fed; the old one is kept
    # for speed.since_keep_s of event time, then dropped
    for name in (MERGED, SPEED_ONLY):
        assert new.state.store(name).zset(keys.since(AS_OF + 2 * H)) == {"i5": 1.0}
        assert new.state.store(name).zset(keys.since(AS_OF)) == {}
    for name in (MERGED, SPEED_ONLY):
        got = new.state.store(name).hash(keys.user("w")).get(FRESH_FIELD)
        assert got is not None and b'"view_version": "v000002"' in got
        assert got == fresh.store(name).hash(keys.user("w")).get(FRESH_FIELD)
    with pytest.raises(ValueError, match="scorers"):
        v.state.follow({MERGED: None}, {})


def test_the_replay_switches_before_the_first_event_at_or_after_each_boundary():
    v = variants(k=3)
    history = (ev(0, "old", "i0", AS_OF - 10),)
    # events every 10 minutes for 5 hours, then one 3 hours later: two boundaries fall in the gap
    test = tuple(ev(n, f"u{n % 4}", ITEMS[n % 20], AS_OF + n * 600_000) for n in range(1, 31))
    test += (ev(31, "late", "i7", AS_OF + 8 * H),)
    split = Split(AS_OF, history, test)
    at = (AS_OF + 2 * H, AS_OF + 6 * H, AS_OF + 7 * H)
    built: list[int] = []

    def build(as_of_ms: int) -> tuple[Loaded, bool]:
        built.append(as_of_ms)
        return loaded_as_of(as_of_ms, f"v00000{len(built) + 1}"), False

    retrainer = Retrainer(at, build, echo=lambda _m: None)
    out = replay(v, split, echo=lambda _m: None, keep_queries=True, retrain=retrainer)
    assert built == list(at)
    assert [(s.version, s.as_of_ms, s.first, s.events) for s in out.segments] == [
        ("v000001", AS_OF, 0, 11),  # 10 min .. 110 min
        ("v000002", AS_OF + 2 * H, 11, 19),  # 120 min .. 300 min
        ("v000003", AS_OF + 6 * H, 30, 0),  # answered nothing: the next boundary came first
        ("v000004", AS_OF + 7 * H, 30, 1),
    ]
    assert sum(s.queries for s in out.segments) == len(out.asked)
    for q in out.asked:
        want = "v000001" if q.t_ms < AS_OF + 2 * H else "v000002" if q.t_ms < AS_OF + 6 * H else "v000004"
        assert q.version == want, q
    doc = json.loads(json.dumps(record(3, at, split, retrainer.runs, out.segments)))
    assert doc["k"] == 3 and doc["boundaries_ms"] == list(at)
    assert [r["version"] for r in doc["runs"]] == ["v000002", "v000003", "v000004"]
    assert [r["events"] for r in doc["runs"]] == [12, 31, 31]
    assert doc["segments"][1]["first_query_ms"] >= AS_OF + 2 * H
