"""lambdastack.candidate_features: the model's input equals its definition, computed by plain loops."""

import math

import numpy as np
import pytest

from lambdastack.candidate_features import evidence_columns, feature_matrix
from lambdastack.features import FEATURE_NAMES, STATE_FEATURES, ItemSide, UserState
from lambdastack.item_matrix import ItemMatrix
from lambdastack.retrieval import EMPTY, NeighbourIndex, decay_weights, knn_evidence

pytestmark = pytest.mark.unit


def _world(seed=1, items=40):
    rng = np.random.default_rng(seed)
    ids = [f"i{k:02d}" for k in range(items)]
    side = ItemSide(
        {i: rng.normal(size=5) for i in ids},
        {i: ["a"] if k % 2 else ["b"] for k, i in enumerate(ids)},
        {i: rng.normal(size=3) for i in ids[::3]},  # ALS factors of every third item
        {i: 1_000 * k for k, i in enumerate(ids) if k % 4},  # first events (none for every fourth)
    )
    matrix = ItemMatrix.build(side, {i: int(rng.integers(0, 100)) for i in ids})
    lists = {i: [ids[j] for j in rng.choice(items, size=6, replace=False) if ids[j] != i] for i in ids}
    scores = {
        i: sorted(rng.choice([0.2, 0.5, 0.7, 0.9], size=len(v)), reverse=True) for i, v in lists.items()
    }
    return side, matrix, NeighbourIndex.build(matrix.index, lists, scores), lists, scores


def _by_loop(lists, scores, recent, weights, candidates, seen):
    sims = {}
    for k, j in enumerate(recent):
        for n, s in zip(lists[j], scores[j], strict=True):
            sims.setdefault(n, []).append((k, s))
    score = {i: sum(weights[k] * s for k, s in v) for i, v in sims.items()}
    top = max([score.get(c, 0.0) for c in candidates], default=0.0)
    unseen = [s for i, s in score.items() if i not in seen]
    out = []
    for c in candidates:
        v = sims.get(c, [])
        sc = score.get(c, 0.0)
        higher = sum(1 for s in unseen if s > sc) if v else len(unseen)
        out.append(
            [
                sc,
                sc / top if top > 0 else 0.0,
                max((s for _, s in v), default=0.0),
                float(len(v)),
                sum(s for k, s in v if k == 0),
                math.log1p(higher),
            ]
        )
    return np.array(out)


def test_evidence_columns_equal_their_definition():
    side, matrix, index, lists, scores = _world()
    ids = list(matrix.ids)
    recent = [ids[3], ids[17], ids[3], ids[30]]  # newest first; an item may recur
    seen = {ids[3], ids[17], ids[30], ids[5]}
    weights = decay_weights(len(recent), 0.8)
    evidence = knn_evidence(index, matrix.rows(recent), weights)
    candidates = [i for i in ids if i not in seen]
    got = evidence_columns(evidence, matrix.rows(candidates), matrix.rows(sorted(seen)))
    expected = _by_loop(lists, scores, recent, weights, candidates, seen)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert (got[:, 5] == 0).any() and got[:, 0].max() > 0


def test_feature_matrix_puts_state_live_and_evidence_in_feature_order():
    side, matrix, index, _, _ = _world()
    ids = list(matrix.ids)
    state = UserState()
    for n, i in enumerate(ids[:6]):
        side.apply(state, i, 1_000 + n, "like", 1.0)
    rows = matrix.rows(ids[10:20])
    live = np.arange(10)
    counts = matrix.counts[rows] + live
    evidence = knn_evidence(index, matrix.rows(ids[:6][::-1]), decay_weights(6, 0.9))
    session = knn_evidence(index, matrix.rows(ids[:2][::-1]), decay_weights(2, 0.9))
    seen = matrix.rows(ids[:6])
    x = feature_matrix(matrix, state, rows, counts, live, evidence, seen, 5_000, session)
    assert x.shape == (10, len(FEATURE_NAMES))
    n = len(STATE_FEATURES)
    np.testing.assert_array_equal(x[:, :n], matrix.features(state, rows, counts, 5_000))
    np.testing.assert_allclose(x[:, n], np.log1p(live), rtol=1e-15)  # math.log1p: within an ulp
    np.testing.assert_array_equal(x[:, n + 1 : n + 7], evidence_columns(evidence, rows, seen))
    assert FEATURE_NAMES[n + 7 :] == ("session_score", "session_share", "als_score", "item_age")
    np.testing.assert_array_equal(x[:, n + 7 : n + 9], evidence_columns(session, rows, seen)[:, :2])
    assert not x[:, n + 9].any()  # a state without ALS factors
    for r, k in enumerate(range(10, 20)):  # item k's first event at 1000 k ms, none if k % 4 == 0
        expected = 0.0 if k % 4 == 0 else math.log1p((5_000 - 1_000 * k if k < 5 else 0) / 86_400_000)
        assert x[r, n + 10] == pytest.approx(expected, abs=1e-15)


def test_als_score_is_the_dot_product_where_both_have_factors():
    side, matrix, index, _, _ = _world()
    ids = list(matrix.ids)
    user = np.array([0.5, -1.0, 2.0])
    state = UserState(als=user)
    rows = matrix.rows([*ids, "unknown"])
    x = feature_matrix(matrix, state, rows, matrix.counts[rows], np.zeros(len(rows)), EMPTY, rows[:0], 10**9)
    col = FEATURE_NAMES.index("als_score")
    expected = [float(side.als[i] @ user) if i in side.als else 0.0 for i in [*ids, "unknown"]]
    np.testing.assert_allclose(x[:, col], expected, rtol=1e-12)
    assert (x[:, col] != 0).sum() == len(side.als)
    age = x[:, FEATURE_NAMES.index("item_age")]
    assert age[-1] == 0.0 and age[1] == pytest.approx(math.log1p((10**9 - 1_000) / 86_400_000))


def test_no_evidence_gives_zero_columns():
    _, matrix, _, _, _ = _world()
    got = evidence_columns(EMPTY, matrix.rows(list(matrix.ids[:5])), np.zeros(0, dtype=np.int64))
    assert got.shape == (5, 6) and not got.any()
