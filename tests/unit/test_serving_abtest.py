"""A/B assignment by a hash of the user id, and feeds ranked by the variant's model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lambdastack.model import load_ranker
from lambdastack.speedview import SpeedRead
from serving.abtest import CHALLENGER, CONTROL, variant
from serving.feed import rank_feed
from tests.unit.test_serving_feed import NOW, tiny_model, world

pytestmark = pytest.mark.unit


def test_assignment_is_deterministic_and_splits_by_share():
    users = [f"user-{n}" for n in range(20_000)]
    first = [variant(u, 0.3, "s1") for u in users]
    assert first == [variant(u, 0.3, "s1") for u in users]
    share = first.count(CHALLENGER) / len(users)
    assert 0.28 < share < 0.32
    assert {variant(u, 0.0, "s1") for u in users[:500]} == {CONTROL}
    assert {variant(u, 1.0, "s1") for u in users[:500]} == {CHALLENGER}
    other_salt = [variant(u, 0.3, "s2") for u in users]
    assert other_salt != first


def test_a_challenger_user_is_ranked_by_the_challenger_model():
    model = tiny_model()
    snap = world(model=model)
    challenger = load_ranker(model, "v000002")
    split = dataclasses.replace(snap, challenger=challenger, ab_share=0.5, ab_salt="t")
    seen = {}
    for n in range(40):
        user = f"new-{n}"
        feed = rank_feed(split, SpeedRead(True, {}), user, 5, NOW)
        seen[feed.variant] = feed.model_version
        assert feed.variant == variant(user, 0.5, "t")
        assert feed.view_version == "v000001"
    assert seen == {CONTROL: "v000001", CHALLENGER: "v000002"}
    base = rank_feed(snap, SpeedRead(True, {}), "new-1", 5, NOW)
    assert base.variant == CONTROL and np.isfinite([i.score for i in base.items]).all()
