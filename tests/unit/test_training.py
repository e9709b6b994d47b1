"""batch.training: each query's pool is drawn from the user's past only, holds its engaged item,
nothing the user had seen, and rows equal to the API's own feature function."""

import numpy as np
import pandas as pd
import pytest

from batch.training import COLUMNS, PoolConfig, TrainingContext, answer_user_queries
from lambdastack.candidate_features import feature_matrix
from lambdastack.features import FEATURE_NAMES, ItemSide, UserState
from lambdastack.retrieval import decay_weights, knn_evidence

pytestmark = pytest.mark.unit
HOUR = 3_600_000
TRAIN_FROM = 1_000 * HOUR


def _world(seed=4, users=6, items=30, n=500):
    rng = np.random.default_rng(seed)
    ids = [f"i{k:02d}" for k in range(items)]
    side = ItemSide(
        {i: rng.normal(size=6) for i in ids},
        {i: [rng.choice(["a", "b", "c"])] for i in ids},
        {i: rng.normal(size=3) for i in ids[:-6]},  # ALS factors of all items but six
        {i: (900 + k) * HOUR for k, i in enumerate(ids)},
    )
    events = pd.DataFrame(
        {
            "event_id": [f"e{k:04d}" for k in range(n)],
            "user_id": rng.choice([f"u{k}" for k in range(users)], size=n),
            "item_id": rng.choice(ids, size=n),
            "type": rng.choice(["view", "like", "skip"], size=n),
            "value": 1.0,
            "t": np.sort(rng.integers(900, 1_100, size=n)) * HOUR,
        }
    )
    before = events[events["t"] < TRAIN_FROM]
    counts = before["item_id"].value_counts().to_dict()
    neighbours = {i: tuple(rng.choice(ids, size=8, replace=False)) for i in ids}
    scores = {i: tuple(np.sort(rng.uniform(0.1, 1.0, size=8))[::-1]) for i in ids}
    live = events[events["t"] >= TRAIN_FROM]
    cfg = PoolConfig(
        knn_n=6,
        recent_n=5,
        decay=0.9,
        movers_n=3,
        popular_n=3,
        negatives=2,
        session_ms=3 * HOUR,
        als_n=4,
    )
    user_als = {f"u{k}": rng.normal(size=3) for k in range(users - 1)}  # the last user has none
    ctx = TrainingContext.build(
        side,
        counts,
        neighbours,
        scores,
        live["item_id"].tolist(),
        live["t"].to_numpy(),
        TRAIN_FROM,
        cfg,
        user_als,
    )
    query = ((events["t"] >= TRAIN_FROM) & (events["type"] != "skip")).astype(int)
    return side, ctx, events.assign(query=query)


def test_pools_see_only_the_past_and_rows_are_the_apis_features():
    side, ctx, events = _world()
    got = answer_user_queries(events, ctx, side)
    assert list(got.columns) == COLUMNS and got["qid"].nunique() > 20
    m = ctx.matrix
    sessions = old_live = als = 0
    for qid, pool in got.groupby("qid"):
        q = events[events["event_id"] == qid].iloc[0]
        past = events[
            (events["user_id"] == q.user_id)
            & ((events["t"] < q.t) | ((events["t"] == q.t) & (events["event_id"] < qid)))
        ]
        seen = set(past["item_id"])
        assert q.item_id not in seen
        assert pool["label"].sum() == 1 and pool.loc[pool["label"] == 1, "item_id"].item() == q.item_id
        assert not seen & set(pool["item_id"]), "a pool item the user had seen"
        state = UserState(als=ctx.user_als.get(q.user_id))
        for e in past.itertuples():
            side.apply(state, e.item_id, int(e.t), e.type, float(e.value))
        newest = past.iloc[::-1].head(ctx.cfg.recent_n)
        recent = m.rows(newest["item_id"].tolist())
        evidence = knn_evidence(ctx.knn, recent, decay_weights(len(recent), ctx.cfg.decay))
        now = newest[newest["t"] >= max(TRAIN_FROM, q.t - ctx.cfg.session_ms)]
        session = knn_evidence(
            ctx.knn, m.rows(now["item_id"].tolist()), decay_weights(len(now), ctx.cfg.decay)
        )
        sessions += len(now) > 0
        rows = m.rows(pool["item_id"].tolist())
        window = events[(events["t"] >= TRAIN_FROM) & (events["t"] < q.t)]  # every live event before t
        live = np.array([(window["item_id"] == i).sum() for i in pool["item_id"]])
        old_live += int((window["t"] < q.t - 48 * HOUR).sum() > 0)
        seen_rows = m.rows(sorted(seen))
        expected = feature_matrix(
            m, state, rows, m.counts[rows] + live, live, evidence, seen_rows, int(q.t), session
        )
        np.testing.assert_allclose(pool[list(FEATURE_NAMES)].to_numpy(), expected, rtol=1e-9, atol=1e-9)
        best = evidence.best_first(ctx.cfg.knn_n, seen_rows)
        assert set(m.ids[r] for r in best) <= set(pool["item_id"])
        if state.als is not None:  # the best unseen items by ALS score are in the pool
            scored = {i: float(f @ state.als) for i, f in side.als.items() if i not in seen}
            top = sorted((i for i in scored if scored[i] > 0), key=lambda i: (-scored[i], i))[: ctx.cfg.als_n]
            assert set(top) <= set(pool["item_id"])
            als += bool(top)
        else:
            assert not pool["als_score"].any()
    assert sessions > 5 and als > 5  # the session features and the ALS source were exercised
    assert old_live > 5  # live events older than the speed buckets' 48 h counted too


def test_a_query_whose_item_retrieval_misses_is_left_out_and_answers_are_deterministic():
    side, ctx, events = _world(seed=8)
    got = answer_user_queries(events, ctx, side)
    asked = events[(events["query"] == 1)]
    assert 0 < got["qid"].nunique() < len(asked)
    again = answer_user_queries(events.sample(frac=1.0, random_state=1), ctx, side)
    pd.testing.assert_frame_equal(
        got.sort_values(["qid", "item_id"]).reset_index(drop=True),
        again.sort_values(["qid", "item_id"]).reset_index(drop=True),
    )


def test_no_query_gives_an_empty_frame():
    side, ctx, events = _world()
    assert answer_user_queries(events.assign(query=0), ctx, side).empty
