"""Per-event scoring (speed.scoring): the merge contract, candidates, and the ONNX scores."""

import numpy as np
import pytest

from lambdastack.candidate_features import evidence_columns
from lambdastack.features import FEATURE_NAMES, STATE_FEATURES, ItemSide, UserState
from lambdastack.model import load_ranker
from lambdastack.retrieval import decay_weights, knn_evidence
from lambdastack.speedview import Interaction, decode_fresh
from speed.scoring import (
    candidates,
    feature_matrix,
    fresh_value,
    merged_state,
    score,
    seed_items,
    window_evidence,
)
from speed.scoring_view import ScoringView
from speed.user_window import ENTRY_SEP, FIELD_SEP

pytestmark = pytest.mark.unit
RNG = np.random.default_rng(7)
ITEMS = [f"i{n}" for n in range(12)]
SIDE = ItemSide(
    {i: RNG.normal(size=6) for i in ITEMS},
    {i: [["a", "b", "c"][n % 3]] for n, i in enumerate(ITEMS)},
)
AS_OF = 1_000_000
NEIGHBOURS = {i: tuple(ITEMS[(n + k) % 12] for k in (1, 2, 3, 4)) for n, i in enumerate(ITEMS)}
SCORES = {i: (0.9, 0.6, 0.4, 0.2) for i in ITEMS}
WIDTH = len(FEATURE_NAMES)


@pytest.fixture(scope="module")
def ranker():
    """A real ONNX model (logistic regression over the model's features) run by onnxruntime."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    x = RNG.normal(size=(200, WIDTH))
    y = (x[:, 2] + 0.5 * x[:, 0] + x[:, 7] > 0).astype(int)
    model = convert_sklearn(
        LogisticRegression().fit(x, y),
        initial_types=[("features", FloatTensorType([None, WIDTH]))],
        options={"zipmap": False},
        target_opset=17,
    )
    return load_ranker(model.SerializeToString(), "v000001").predict


def _profile(events):
    state = UserState()
    for e in events:
        SIDE.apply(state, e.item_id, e.event_time_ms, e.type, e.value)
    return {
        "n": state.n,
        "interest": None if state.interest is None else state.interest.tolist(),
        "t_ref": state.t_ref,
        "genre_names": sorted(state.genres),
        "genre_counts": [state.genres[g] for g in sorted(state.genres)],
        "last_item": state.last_item,
        "last_t": state.last_t,
    }


BEFORE = [
    Interaction("i0", "view", 1.0, AS_OF - 5000, "e1"),
    Interaction("i1", "like", 1.0, AS_OF - 10, "e2"),
]


def _view(ranker=None, version="v000001"):
    return ScoringView(
        version=version,
        as_of_ms=AS_OF,
        side=SIDE,
        counts={i: n * 3 for n, i in enumerate(ITEMS)},
        neighbours=NEIGHBOURS,
        profiles={"u1": _profile(BEFORE)},
        history={"u1": frozenset({"i0", "i1"})},
        ranker=ranker,
        neighbour_scores=SCORES,
        recent={"u1": ("i1", "i0")},
    )


def test_merged_state_is_the_profile_plus_the_window_since_the_as_of_in_time_order():
    # the window overlaps the batch (i1 before the as-of) and arrived out of event-time order
    window = [
        BEFORE[1],
        Interaction("i5", "watch", 90.0, AS_OF + 3000, "e4"),
        Interaction("i4", "skip", 1.0, AS_OF + 2000, "e3"),
        Interaction("i6", "rating", 4.5, AS_OF + 3000, "e5"),
    ]
    merged = merged_state(_view(), "u1", window)
    full = UserState()
    for e in sorted(BEFORE + window[1:], key=lambda e: (e.event_time_ms, e.event_id)):
        SIDE.apply(full, e.item_id, e.event_time_ms, e.type, e.value)
    assert merged.n == full.n == 5
    assert np.allclose(merged.interest, full.interest)
    assert (merged.genres, merged.last_item, merged.last_t) == (full.genres, "i6", AS_OF + 3000)


def test_candidates_are_unseen_neighbours_of_the_newest_engaged_items():
    window = [
        Interaction("i2", "view", 1.0, AS_OF + 1, "a"),
        Interaction("i7", "skip", 1.0, AS_OF + 2, "b"),
        Interaction("i3", "like", 1.0, AS_OF + 3, "c"),
    ]
    assert seed_items(window, 3) == ["i3", "i2"]  # newest first; a skip is no engagement
    assert seed_items(window, 1) == ["i3"]
    got = candidates(_view(), "u1", window, ["i3", "i2"], 10)
    # i3 -> i4 i5 i6 i7, i2 -> i3 i4 i5 i6; seen: i2 i3 i7 (window), i0 i1 (batch history)
    assert got == ["i4", "i5", "i6"]
    # only the first two neighbours of each seed: i3 -> i4 i5, i2 -> i3 i4
    assert candidates(_view(), "u1", window, ["i3", "i2"], 2) == ["i4", "i5"]


def test_score_ranks_candidates_by_the_model_on_the_shared_features(ranker):
    snap = _view(ranker)
    window = [
        Interaction("i4", "skip", 1.0, AS_OF + 10, "a"),
        Interaction("i8", "share", 1.0, AS_OF + 20, "b"),
    ]
    fresh = score(snap, "u1", window, fresh_n=3, seeds_n=2, per_seed=20)
    assert fresh is not None
    assert (fresh.view_version, fresh.model_version, fresh.event_time_ms) == (
        "v000001",
        "v000001",
        AS_OF + 20,
    )
    items = candidates(snap, "u1", window, ["i8"], 20)
    assert items == ["i9", "i10", "i11"] and len(fresh.items) == 3
    state = merged_state(snap, "u1", window)
    x = feature_matrix(snap, "u1", state, window, items, AS_OF + 20)
    expected = sorted(zip(items, np.round(ranker(x), 6), strict=True), key=lambda r: (-r[1], r[0]))
    assert [(i, pytest.approx(s, abs=1.1e-6)) for i, s in expected] == list(fresh.items)
    assert len(score(snap, "u1", window, fresh_n=2, seeds_n=2, per_seed=20).items) == 2


def test_no_fresh_candidates_without_an_engagement_or_a_model(ranker):
    positive = [Interaction("i8", "like", 1.0, AS_OF + 20, "b")]
    assert score(_view(None), "u1", positive, 5, 2, 20) is None
    assert score(_view(ranker), "u1", [Interaction("i8", "skip", 1.0, AS_OF, "x")], 5, 2, 20) is None
    assert score(_view(ranker), "u1", [Interaction("i8", "rating", 2.0, AS_OF, "x")], 5, 2, 20) is None
    assert score(_view(ranker), "u1", [], 5, 2, 20) is None
    assert fresh_value(None, "u1", "i8|like|1.0|5|b", 5, 2, 20) is None


def test_fresh_value_is_the_encoded_score_and_byte_stable(ranker):
    snap = _view(ranker, version="v000009")
    window = ENTRY_SEP.join(
        FIELD_SEP.join(p)
        for p in (["i1", "view", "1.0", str(AS_OF + 1), "a"], ["i5", "watch", "30.5", str(AS_OF + 2), "b"])
    )
    raw = fresh_value(snap, "u2", window, 5, 3, 20)  # u2: no batch profile, no history
    assert raw == fresh_value(snap, "u2", window, 5, 3, 20)
    fresh = decode_fresh(raw)
    assert fresh.view_version == "v000009" and fresh.event_time_ms == AS_OF + 2
    # seeds i5 then i1: neighbours i6 i7 i8 i9 and i2 i3 i4 (i5 is seen); the best 5 of those 7
    assert len(fresh.items) == 5 and {i for i, _ in fresh.items} < {"i2", "i3", "i4", "i6", "i7", "i8", "i9"}
    assert [s for _, s in fresh.items] == sorted((s for _, s in fresh.items), reverse=True)


@pytest.mark.parametrize("events", [[], BEFORE, BEFORE + [Interaction("i3", "skip", 1.0, AS_OF + 5, "x")]])
def test_feature_matrix_is_the_shared_state_features_without_live_counts(events):
    side = ItemSide({**SIDE.vectors, "zero": np.zeros(6)}, {**SIDE.genres, "nogenre": []})
    snap = ScoringView("v1", AS_OF, side, {"i1": 4, "i2": -1}, {}, {}, {})
    state = UserState()
    for e in events:
        side.apply(state, e.item_id, e.event_time_ms, e.type, e.value)
    items = [*ITEMS, "zero", "nogenre", "unknown"]
    t = AS_OF + 3_600_000
    expected = np.array([side.row(state, i, snap.counts.get(i, 0), t) for i in items])
    got = feature_matrix(snap, "u9", state, (), items, t)
    assert got.shape == (len(items), WIDTH)
    assert np.allclose(got[:, : len(STATE_FEATURES)], expected, rtol=1e-12, atol=1e-12)
    assert not got[:, len(STATE_FEATURES) :].any()  # no live counts, no neighbours


def test_the_kNN_evidence_is_the_windows_newest_then_the_batchs_and_seen_items_rank_out():
    snap = _view()
    window = [
        Interaction("i1", "view", 1.0, AS_OF - 10, "e2"),  # before the as-of: the batch holds it
        Interaction("i4", "skip", 1.0, AS_OF + 10, "a"),
        Interaction("i8", "share", 1.0, AS_OF + 20, "b"),
    ]
    evidence, seen, session = window_evidence(snap, "u1", window, AS_OF + 20)
    m = snap.matrix
    sequence = m.rows(["i8", "i4", "i1", "i0"])
    expected = knn_evidence(snap.knn, sequence, decay_weights(4, snap.knn_decay))
    np.testing.assert_array_equal(evidence.rows, expected.rows)
    np.testing.assert_allclose(evidence.score, expected.score)
    assert sorted(m.ids[r] for r in set(seen.tolist())) == ["i0", "i1", "i4", "i8"]
    # the session: the window's interactions at or after the as-of (both within 30 minutes)
    in_session = knn_evidence(snap.knn, m.rows(["i8", "i4"]), decay_weights(2, snap.knn_decay))
    np.testing.assert_allclose(session.score, in_session.score)
    items = ["i9", "i5", "i3"]
    x = feature_matrix(snap, "u1", merged_state(snap, "u1", window), window, items, AS_OF + 20)
    n = len(STATE_FEATURES)
    np.testing.assert_allclose(x[:, n + 1 : n + 7], evidence_columns(evidence, m.rows(items), seen))
    np.testing.assert_allclose(x[:, n + 7 : n + 9], evidence_columns(session, m.rows(items), seen)[:, :2])
    # i9: neighbour 1 of i8 (0.9); i5: of i4 (0.9 x 0.9), of i1 (0.2 x 0.81); i3: of i1 and i0
    assert x[0, len(STATE_FEATURES) + 1] == pytest.approx(0.9)


@pytest.mark.parametrize("profile", [[], BEFORE])
def test_the_closed_form_merge_equals_applying_the_events_one_by_one(profile):
    rng = np.random.default_rng(len(profile))
    side = ItemSide({i: v for i, v in SIDE.vectors.items() if i != "i3"}, SIDE.genres)  # i3: no vector
    snap = ScoringView("v1", AS_OF, side, {}, {}, {"u": _profile(profile)} if profile else {}, {})
    types = ["view", "skip", "watch", "rating", "like", "share"]
    window = [
        Interaction(
            f"i{rng.integers(0, 12)}", types[k % 6], float(rng.integers(1, 11) / 2), AS_OF + int(t), f"e{k}"
        )
        for k, t in enumerate(rng.integers(0, 30 * 86_400_000, size=80))
    ]
    merged = merged_state(snap, "u", window)
    sequential = snap.user_state("u")
    for e in sorted(window, key=lambda e: (e.event_time_ms, e.event_id)):
        side.apply(sequential, e.item_id, e.event_time_ms, e.type, e.value)
    assert np.allclose(merged.interest, sequential.interest, rtol=1e-9, atol=1e-12)
    assert (merged.n, merged.t_ref, merged.genres, merged.last_item, merged.last_t) == (
        sequential.n,
        sequential.t_ref,
        sequential.genres,
        sequential.last_item,
        sequential.last_t,
    )


def test_a_batch_scores_each_users_last_positive_engagement_only_with_the_same_final_values(ranker):
    from speed.scoring import fresh_values

    snap = _view(ranker, version="v000009")

    def win(*entries):
        return ENTRY_SEP.join(FIELD_SEP.join(e) for e in entries)

    a1 = ["i1", "like", "1.0", str(AS_OF + 1), "a1"]
    a2 = ["i5", "view", "1.0", str(AS_OF + 2), "a2"]
    a3 = ["i2", "skip", "1.0", str(AS_OF + 3), "a3"]  # not positive: nothing written for it
    b1 = ["i3", "like", "1.0", str(AS_OF + 1), "b1"]
    users = ["ua", "ub", "ua", "ua"]
    windows = [win(a1), win(b1), win(a1, a2), win(a1, a2, a3)]
    got = fresh_values(snap, users, windows, 5, 3, 20)
    one_by_one = [fresh_value(snap, u, w, 5, 3, 20) for u, w in zip(users, windows, strict=True)]
    assert got == [None, one_by_one[1], one_by_one[2], None]
    # what an upsert sink keeps per user (the last non-null value) is the same either way
    last = lambda values: {u: v for u, v in zip(users, values, strict=True) if v is not None}  # noqa: E731
    assert last(got) == last(one_by_one)
    assert fresh_values(None, ["u"], [win(a1)], 5, 3, 20) == [None]
