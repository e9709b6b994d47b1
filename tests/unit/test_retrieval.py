"""lambdastack.retrieval: the CSR neighbour index and the kNN evidence, against a plain loop."""

from __future__ import annotations

import numpy as np
import pytest

from lambdastack.retrieval import (
    KnnEvidence,
    NeighbourIndex,
    decay_weights,
    knn_evidence,
    outside,
    sequence_evidence,
    top_scored,
)

pytestmark = pytest.mark.unit

INDEX = {"a": 0, "b": 1, "c": 2, "d": 3}


def tiny() -> NeighbourIndex:
    return NeighbourIndex.build(
        INDEX,
        {"a": ["b", "c", "zz"], "b": ["a", "c"], "d": ["c"], "zz": ["a"]},
        {"a": [0.9, 0.5, 0.4], "b": [0.9, 0.2], "d": [0.7], "zz": [1.0]},
    )


def test_build_keeps_rows_of_the_index_and_drops_unknown_ids() -> None:
    idx = tiny()
    assert idx.indptr.tolist() == [0, 2, 4, 4, 5]
    assert idx.cols.tolist() == [1, 2, 0, 2, 2]
    assert idx.scores.tolist() == [0.9, 0.5, 0.9, 0.2, 0.7]


def test_evidence_of_a_hand_checked_case() -> None:
    # recent, newest first: b (weight 1), unknown (-1), a (weight 0.25)
    ev = knn_evidence(tiny(), np.array([1, -1, 0]), np.array([1.0, 0.5, 0.25]))
    got = {
        int(r): (s, b, v, la)
        for r, s, b, v, la in zip(ev.rows, ev.score, ev.best, ev.votes, ev.last, strict=True)
    }
    assert set(got) == {0, 1, 2}
    assert got[0] == pytest.approx((0.9, 0.9, 1, 0.9))  # a: from b only
    assert got[1] == pytest.approx((0.225, 0.9, 1, 0.0))  # b: from a, weight 0.25
    assert got[2] == pytest.approx((0.2 + 0.125, 0.5, 2, 0.2))  # c: from b and a
    assert ev.rows.tolist() == [0, 1, 2]  # rows ascending
    assert ev.best_first(3).tolist() == [0, 2, 1]  # by score
    assert ev.best_first(2, exclude=np.array([0])).tolist() == [2, 1]
    assert ev.best_first(0).tolist() == []
    # what led to each: a from b (position 0), b from a (2), c from a (0.5 against b's 0.2)
    assert ev.origins(np.array([0, 1, 2, 3, -1])) == [0, 2, 2, -1, -1]
    assert knn_evidence(tiny(), np.array([2]), np.array([1.0])).origins(np.array([0])) == [-1]


def test_newest_unknown_item_gives_no_last_similarity() -> None:
    ev = knn_evidence(tiny(), np.array([-1, 1]), np.array([1.0, 1.0]))
    assert ev.last.tolist() == [0.0, 0.0]
    assert knn_evidence(tiny(), np.array([], dtype=np.int64), np.array([])).rows.size == 0
    assert knn_evidence(tiny(), np.array([2]), np.array([1.0])).rows.size == 0  # c lists nothing


def test_random_indexes_match_a_plain_loop() -> None:
    rng = np.random.default_rng(3)
    for _ in range(30):
        n = int(rng.integers(1, 40))
        ids = [f"i{k}" for k in range(n)]
        index = {i: k for k, i in enumerate(ids)}
        lists = {i: list(rng.choice(ids, size=int(rng.integers(0, n + 1)), replace=False)) for i in ids}
        sims = {i: list(rng.random(len(v))) for i, v in lists.items()}
        idx = NeighbourIndex.build(index, lists, sims)
        recent = rng.integers(-1, n, size=int(rng.integers(0, 25)))
        w = decay_weights(len(recent), 0.9)
        ev = knn_evidence(idx, recent, w)
        expect: dict[int, list[float]] = {}
        for k, r in enumerate(recent.tolist()):
            if r < 0:
                continue
            for b, s in zip(lists[ids[r]], sims[ids[r]], strict=True):
                e = expect.setdefault(index[b], [0.0, -1.0, 0.0, 0.0, -1])
                e[0] += w[k] * s
                if s > e[1]:  # the newest of equal links
                    e[1], e[4] = s, k
                e[2] += 1
                if k == 0:
                    e[3] = s
        origins = ev.origins(ev.rows)
        got = {
            int(r): [s, b, v, la, o]
            for r, s, b, v, la, o in zip(ev.rows, ev.score, ev.best, ev.votes, ev.last, origins, strict=True)
        }
        assert got.keys() == expect.keys()
        for r, e in expect.items():
            assert got[r] == pytest.approx(e)
        assert np.all(np.diff(ev.rows) > 0)
        n = int(rng.integers(0, 12))
        excluded = rng.integers(0, n + 1, size=3)
        ranked = sorted(
            (r for r in expect if r not in set(excluded.tolist())), key=lambda r: (-round(expect[r][0], 9), r)
        )
        assert ev.best_first(n, excluded).tolist() == ranked[:n]


def test_best_first_cuts_at_the_nth_score_with_ties_by_row_on_any_spread() -> None:
    """Scores with many ties, a long tail and all equal (the n-th is found by bins: a bin may hold
    the n-th's ties, or everything)."""
    rng = np.random.default_rng(5)
    for trial in range(300):
        m = int(rng.integers(1, 1500))
        spread = trial % 3
        score = [np.round(rng.random(m), 1), rng.random(m) ** 12, np.ones(m)][spread]
        rows = np.sort(rng.choice(4 * m, size=m, replace=False)).astype(np.int64)
        ev = KnnEvidence(rows, np.vstack([score, score, score, score]))
        excluded = rng.choice(rows, size=min(m, 20), replace=False)
        n = int(rng.integers(1, m + 5))
        kept = [k for k in range(m) if rows[k] not in set(excluded.tolist())]
        ranked = [int(rows[k]) for k in sorted(kept, key=lambda k: (-score[k], rows[k]))]
        assert ev.best_first(n, excluded).tolist() == ranked[:n]


def test_decay_weights() -> None:
    assert decay_weights(3, 0.5).tolist() == [1.0, 0.5, 0.25]


def test_top_scored_takes_the_best_positive_unexcluded_rows_ties_by_row():
    scores = np.array([0.5, 2.0, -1.0, 2.0, 0.0, 0.7, 3.0])
    assert top_scored(scores, 3, np.array([6])).tolist() == [1, 3, 5]
    assert top_scored(scores, 10, np.array([], dtype=np.int64)).tolist() == [6, 1, 3, 5, 0]
    assert top_scored(scores, 0, np.array([], dtype=np.int64)).tolist() == []
    assert top_scored(np.zeros(0), 2, np.array([0, 99])).tolist() == []


def test_outside_is_not_isin():
    rng = np.random.default_rng(5)
    for _ in range(50):
        rows = rng.integers(0, 30, int(rng.integers(0, 20)))
        exclude = rng.integers(0, 40, int(rng.integers(0, 10)))
        assert outside(rows, exclude).tolist() == (~np.isin(rows, exclude)).tolist()
    assert outside(np.array([-1, 3]), np.array([3])).tolist() == [True, False]


def test_the_sessions_evidence_from_the_sequences_pass_is_knn_evidence_of_its_first_m_exactly():
    rng = np.random.default_rng(9)
    ids = [f"i{k}" for k in range(60)]
    index = {i: n for n, i in enumerate(ids)}
    lists = {i: list(rng.choice(ids, size=int(rng.integers(0, 12)), replace=False)) for i in ids}
    scores = {i: sorted(rng.uniform(0.05, 1.0, size=len(v)), reverse=True) for i, v in lists.items()}
    knn = NeighbourIndex.build(index, lists, scores)
    for _ in range(40):
        recent = rng.integers(-1, 60, int(rng.integers(0, 20)))
        w = decay_weights(len(recent), 0.9)
        full = knn_evidence(knn, recent, w)
        for m in range(len(recent) + 1):
            whole, got = sequence_evidence(knn, recent, recent[:m], 0.9)
            want = knn_evidence(knn, recent[:m], w[:m])
            for a in ("rows", "stats"):
                np.testing.assert_array_equal(getattr(whole, a), getattr(full, a))
                np.testing.assert_array_equal(getattr(got, a), getattr(want, a))


def test_sequence_evidence_takes_the_sessions_from_the_sequences_prefix_or_computes_its_own():
    ids = [f"i{k}" for k in range(8)]
    index = {i: n for n, i in enumerate(ids)}
    lists = {i: [ids[(n + 1) % 8], ids[(n + 3) % 8]] for n, i in enumerate(ids)}
    knn = NeighbourIndex.build(index, lists, dict.fromkeys(ids, (0.8, 0.3)))
    seq = np.array([4, 2, 7, 1])
    for session in (seq[:2], seq[:0], np.array([5, 6]), seq):  # prefixes, and one that is not
        evidence, got = sequence_evidence(knn, seq, session, 0.9)
        want = knn_evidence(knn, session, decay_weights(len(session), 0.9))
        np.testing.assert_array_equal(got.rows, want.rows)
        np.testing.assert_array_equal(got.score, want.score)
        np.testing.assert_array_equal(evidence.score, knn_evidence(knn, seq, decay_weights(4, 0.9)).score)


def test_the_table_and_the_sorting_paths_give_the_same_evidence() -> None:
    # lists over a wide catalogue name few rows next to its size (the sorting path) or many (the
    # table): the same lists read through a narrow numbering must give the same evidence
    rng = np.random.default_rng(11)
    narrow = [f"i{k}" for k in range(300)]
    lists = {i: list(rng.choice(narrow, size=int(rng.integers(0, 9)), replace=False)) for i in narrow}
    sims = {i: list(rng.random(len(v))) for i, v in lists.items()}
    dense = NeighbourIndex.build({i: n for n, i in enumerate(narrow)}, lists, sims)
    sparse = NeighbourIndex.build({i: n * 1000 for n, i in enumerate(narrow)}, lists, sims)
    for _ in range(40):
        recent = rng.integers(-1, 300, int(rng.integers(1, 20)))
        w = decay_weights(len(recent), 0.9)
        a = knn_evidence(dense, recent, w)
        b = knn_evidence(sparse, np.where(recent >= 0, recent * 1000, -1), w)
        assert (b.rows // 1000).tolist() == a.rows.tolist() and np.all(b.rows % 1000 == 0)
        np.testing.assert_array_equal(a.stats, b.stats)
