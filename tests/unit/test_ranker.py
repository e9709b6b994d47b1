import math

import numpy as np
import pandas as pd
import pytest

from batch.ranker import NDCG_K, PARITY_TOLERANCE, onnx_predict, pool_ndcg, train
from lambdastack.features import FEATURE_NAMES

pytestmark = pytest.mark.unit
KNN = FEATURE_NAMES.index("knn_score")
POP = FEATURE_NAMES.index("item_pop")


def _pools(n_pools=400, size=30, seed=0):
    """Pools of `size` candidates with one engaged item each, which mostly has a high knn_score
    and, among equals, a high affinity (column 2): something a learned order can find."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_pools * size, len(FEATURE_NAMES)))
    utility = 1.5 * x[:, KNN] + 1.0 * x[:, 2] * (x[:, KNN] > 0) + rng.gumbel(size=len(x))
    qid = np.repeat(np.arange(n_pools), size)
    best = pd.Series(utility).groupby(qid).idxmax().to_numpy()
    label = np.zeros(len(x), dtype=int)
    label[best] = 1
    df = pd.DataFrame(x, columns=list(FEATURE_NAMES))
    df.insert(0, "qid", [f"q{q:04d}" for q in qid])
    df.insert(1, "item_id", [f"i{k}" for k in range(len(x))])
    df.insert(2, "t", qid * 1000)
    df["label"] = label
    return df


def test_pool_ndcg_by_hand():
    groups = np.array(["a", "a", "a", "b", "b"])
    labels = np.array([0, 1, 0, 1, 0])
    # pool a: the positive is second (one above it); pool b: tied with the negative, counted below it
    scores = np.array([0.9, 0.5, 0.1, 0.3, 0.3])
    expected = (1 / math.log2(3) + 1 / math.log2(3)) / 2
    assert pool_ndcg(groups, labels, scores) == pytest.approx(expected)
    assert pool_ndcg(groups, labels, scores, k=1) == 0.0


def test_trained_ranker_beats_its_baselines_and_onnx_matches():
    data = _pools()
    model = train(data, validate_from=320 * 1000)
    m = model.metrics
    assert m["rows"]["pools"] == {"train": 320, "validation": 80}
    assert m["rows"]["train"] == 320 * 30
    ndcg = m[f"pool_ndcg@{NDCG_K}"]
    assert (
        ndcg > m["baseline"][f"pool_ndcg@{NDCG_K}_knn_score"] > m["baseline"][f"pool_ndcg@{NDCG_K}_item_pop"]
    )
    assert m["onnx_max_abs_diff"] <= PARITY_TOLERANCE
    x = data[list(FEATURE_NAMES)].to_numpy()[:5]
    assert onnx_predict(model.onnx, x).shape == (5,)


def test_training_is_deterministic():
    a, b = train(_pools(), 320 * 1000), train(_pools(), 320 * 1000)
    assert a.onnx == b.onnx


def test_thresholds_floored_to_float32_make_the_onnx_export_exact():
    """Two adjacent float32 values: LightGBM splits at their double midpoint, which rounds up
    onto the larger one in float32 (ties to even); the export would send it left."""
    import lightgbm as lgb
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    from batch.ranker import float32_thresholds
    from lambdastack.model import load_ranker

    low = np.nextafter(np.float32(1.0), np.float32(2.0))  # an odd last mantissa bit
    high = np.nextafter(low, np.float32(2.0))
    x = np.zeros((120, len(FEATURE_NAMES)), dtype=np.float32)
    x[:60, KNN], x[60:, KNN] = low, high
    y = np.r_[np.zeros(60), np.ones(60)]
    booster = lgb.LGBMRegressor(n_estimators=1, min_child_samples=5, verbose=-1).fit(x, y).booster_

    def exported(b: lgb.Booster) -> np.ndarray:
        types = [("features", FloatTensorType([None, len(FEATURE_NAMES)]))]
        model = onnxmltools.convert_lightgbm(b, initial_types=types, target_opset=15)
        return load_ranker(model.SerializeToString(), "check").predict(x[[0, -1]])

    trained = booster.predict(x[[0, -1]].astype(np.float64))
    assert trained[1] > trained[0]
    assert exported(booster)[1] == pytest.approx(trained[0])  # rounded up: `high` goes left
    floored = float32_thresholds(booster)
    assert np.array_equal(floored.predict(x.astype(np.float64)), booster.predict(x.astype(np.float64)))
    assert exported(floored) == pytest.approx(trained, abs=1e-7)
