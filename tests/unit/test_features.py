import math

import numpy as np
import pytest

from lambdastack.features import STATE_FEATURES, ItemSide, UserState, event_weight, features, is_positive

pytestmark = pytest.mark.unit
RNG = np.random.default_rng(3)
SIDE = ItemSide(
    {f"i{n}": RNG.normal(size=8) for n in range(20)},
    {f"i{n}": [["a", "b", "c"][n % 3]] + (["d"] if n % 4 == 0 else []) for n in range(20)},
)


def _events(n=60, seed=1):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 30 * 86_400_000, size=n))
    types = rng.choice(["view", "like", "share", "skip", "watch", "rating"], size=n)
    return [
        (f"i{rng.integers(0, 20)}", int(t[k]), str(types[k]), float(rng.integers(1, 11) / 2))
        for k in range(n)
    ]


def test_weights_and_labels():
    assert event_weight("share", 1) == 3.0 and event_weight("skip", 1) == -0.5
    assert event_weight("watch", 300) == 3.0 and event_weight("watch", 30) == 1.5
    assert event_weight("rating", 5) == 1.0 and event_weight("rating", 2.5) == 0.0
    assert is_positive("rating", 4.0) and not is_positive("rating", 2.0) and not is_positive("skip", 1)


def test_state_as_of_t_plus_later_events_equals_a_full_replay():
    """The merge the serving layer does: batch state as of T, then the events since T."""
    events = _events()
    full = UserState()
    for item, t, etype, value in events:
        SIDE.apply(full, item, t, etype, value)
    cut = events[len(events) // 2][1]
    merged = UserState()
    for item, t, etype, value in (e for e in events if e[1] < cut):
        SIDE.apply(merged, item, t, etype, value)
    snapshot = merged.copy()
    for item, t, etype, value in (e for e in events if e[1] >= cut):
        SIDE.apply(merged, item, t, etype, value)
    now = events[-1][1] + 3_600_000
    for item in ("i0", "i5", "i13"):
        a, b = SIDE.row(full, item, 7, now), SIDE.row(merged, item, 7, now)
        assert np.allclose(a, b, rtol=0, atol=1e-12)
    assert snapshot.n == len([e for e in events if e[1] < cut])  # copy() is independent


def test_feature_values_by_hand():
    s = UserState()
    v = np.array([1.0, 0.0])
    s.apply("x", 0, 2.0, v, ["a"])
    s.apply("y", 3_600_000, 1.0, np.array([0.0, 1.0]), ["b"])
    row = features(s, np.array([0.0, 1.0]), ["b", "c"], 9, 3 * 3_600_000, np.array([0.0, 1.0]))
    decay = math.exp(-math.log(2) / (14 * 86_400_000) * 3_600_000)
    interest = np.array([2.0 * decay, 1.0])
    assert dict(zip(STATE_FEATURES, row, strict=True)) == pytest.approx(
        {
            "item_pop": math.log1p(9),
            "user_activity": math.log1p(2),
            "affinity": interest[1] / np.linalg.norm(interest),
            "genre_affinity": (1 + 0) / (2 * 2),
            "last_sim": 1.0,
            "recency": math.log1p(2.0),
        }
    )


def test_a_user_without_history_has_neutral_features():
    assert features(UserState(), np.ones(2), ["a"], 0, 10, None) == [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
