import json

import pytest

from batch.predict import parse_instance
from lambdastack.features import FEATURE_NAMES

pytestmark = pytest.mark.unit
GOOD = {f: 1.0 for f in FEATURE_NAMES}


def test_a_good_line():
    assert parse_instance(json.dumps({**GOOD, "id": 7})) == ([1.0] * len(FEATURE_NAMES), "7", None)


def test_every_bad_field_is_named():
    line = {**GOOD, "affinity": "high", "colour": 1}
    del line["recency"]
    _, _, error = parse_instance(json.dumps(line))
    assert (
        error
        == "affinity: must be a finite number; recency: is required; colour: is not a feature of the model"
    )


def test_not_json_or_not_an_object():
    assert parse_instance("{")[2].startswith("<line>: is not valid JSON")
    assert parse_instance("[1]")[2] == "<line>: must be a JSON object"
    assert parse_instance(json.dumps({**GOOD, "item_pop": float("nan")}).replace("NaN", "NaN"))[2] == (
        "item_pop: must be a finite number"
    )
