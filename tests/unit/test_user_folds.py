"""batch.user_folds: the vectorised folds equal folding events one by one through lambdastack.features."""

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from batch import user_folds
from lambdastack.features import ItemSide, UserState, event_weight, event_weights

pytestmark = pytest.mark.unit
TYPES = ["view", "click", "like", "share", "skip", "watch", "rating"]


def _world(seed=3, users=12, items=15, n=400):
    rng = np.random.default_rng(seed)
    ids = [f"i{k}" for k in range(items)]
    vectors = {i: rng.normal(size=8) for i in ids[:-3]}  # three items without a vector
    genres = {i: list(rng.choice(["a", "b", "c", "d"], size=rng.integers(0, 3))) for i in ids}
    genres["i0"] = ["a", "a"]  # a repeated genre counts twice, as in UserState
    tags = {i: list(rng.choice(["x", "y", "z"], size=rng.integers(0, 3))) for i in ids}
    day = 86_400_000
    events = pd.DataFrame(
        {
            "event_id": [f"e{k:04d}" for k in range(n)],
            "user_id": rng.choice([f"u{k}" for k in range(users)], size=n),
            "item_id": rng.choice([*ids, "unknown"], size=n),
            "type": rng.choice(TYPES, size=n),
            "value": rng.uniform(-1, 130, size=n).round(1),
            # coarse times: many events share an instant, over ~400 days
            "event_time_ms": rng.integers(0, 400, size=n) * day,
        }
    )
    return ItemSide(vectors, genres), tags, events


def _sequential_state(side, events):
    state = UserState()
    for r in events.sort_values(["event_time_ms", "event_id"], kind="stable").itertuples():
        side.apply(state, r.item_id, int(r.event_time_ms), r.type, float(r.value))
    return state


def test_event_weights_match_event_weight():
    types = np.array(TYPES * 3, dtype=object)
    values = np.array([-5.0, 0.0, 3.5, 60.0, 200.0, 4.0, 1.0] * 3)
    expected = [event_weight(t, v) for t, v in zip(types, values, strict=True)]
    assert event_weights(types, values).tolist() == expected


def test_profiles_equal_the_sequential_fold():
    side, tags, events = _world()
    got = user_folds.profiles(events, user_folds.SideArrays.build(side, tags)).set_index("user_id")
    for user, evs in events.groupby("user_id"):
        state = _sequential_state(side, evs)
        row = got.loc[user]
        assert row["n"] == state.n and row["t_ref"] == state.t_ref
        assert row["last_item"] == state.last_item and row["last_t"] == state.last_t
        assert dict(zip(row["genre_names"], row["genre_counts"], strict=True)) == state.genres
        np.testing.assert_allclose(row["interest"], state.interest, rtol=1e-12, atol=1e-12)
        tag_counts = Counter(t for i in evs["item_id"] for t in tags.get(i, ()))
        assert row["top_tags"] == [t for t, _ in sorted(tag_counts.items(), key=lambda x: (-x[1], x[0]))[:5]]
        top = sorted(state.genres.items(), key=lambda x: (-x[1], x[0]))[:3]
        assert row["top_genres"] == [g for g, _ in top]
        assert row["distinct_items"] == evs["item_id"].nunique()
        assert row["active_days"] == (evs["event_time_ms"] // 86_400_000).nunique()
        assert row["first_t"] == evs["event_time_ms"].min()


def test_no_events_give_an_empty_frame():
    side, tags, events = _world()
    arrays = user_folds.SideArrays.build(side, tags)
    assert user_folds.profiles(events.iloc[:0], arrays).empty
