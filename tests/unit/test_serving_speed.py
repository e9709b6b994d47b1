"""Pure parts of /v1/predict parsing (the speed-view codecs: tests/unit/test_speedview.py)."""

from __future__ import annotations

import pytest

from lambdastack.features import FEATURE_NAMES
from serving.predict import parse_instance

pytestmark = pytest.mark.unit


def test_predict_instances_are_checked_field_by_field():
    good = {n: 0.5 for n in FEATURE_NAMES}
    assert parse_instance({"features": good}).row == [0.5] * len(FEATURE_NAMES)
    assert parse_instance({"user_id": "u1", "item_id": "i1"}).pair == ("u1", "i1")
    bad = parse_instance({"features": {**good, "item_pop": "x", "colour": 1}}).error
    assert "features.item_pop: must be a finite number" in bad and "features.colour" in bad
    assert "item_id" in parse_instance({"user_id": "u1"}).error
    assert "user_id" in parse_instance({"user_id": "bad id", "item_id": "i"}).error
    assert parse_instance(["x"]).error == "instance: must be an object"
