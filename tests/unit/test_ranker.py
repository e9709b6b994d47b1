import numpy as np
import pandas as pd
import pytest

from batch.ranker import PARITY_TOLERANCE, onnx_predict, train
from lambdastack.features import FEATURE_NAMES

pytestmark = pytest.mark.unit


def _data(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURE_NAMES)))
    logit = 1.5 * x[:, 0] + 2.0 * x[:, 2] - 1.0
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    df = pd.DataFrame(x, columns=list(FEATURE_NAMES))
    df.insert(0, "t", np.arange(n))
    df["label"] = y
    return df


def test_trained_ranker_beats_its_baselines_and_onnx_matches():
    data = _data()
    model = train(data, validate_from=2400)
    m = model.metrics
    assert m["rows"] == {
        "train": 2400,
        "validation": 600,
        "positive_rate": pytest.approx(data["label"].mean(), abs=1e-6),
    }
    assert m["auc"] > m["baseline"]["auc_item_pop"] and m["auc"] > 0.8
    assert m["log_loss"] < m["baseline"]["log_loss_base_rate"]
    assert m["onnx_max_abs_diff"] <= PARITY_TOLERANCE
    p = onnx_predict(model.onnx, data[list(FEATURE_NAMES)].to_numpy()[:5])
    assert p.shape == (5,) and ((p >= 0) & (p <= 1)).all()


def test_training_is_deterministic():
    a, b = train(_data(), 2400), train(_data(), 2400)
    assert a.onnx == b.onnx
