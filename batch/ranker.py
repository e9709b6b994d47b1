"""The ranking model: gradient-boosted trees (scikit-learn) on the Spark-built training set,
exported to ONNX and checked against the trained model with onnxruntime.

Why scikit-learn over Spark MLlib: the training sample fits in memory by design (capped), the
model must run in the API per request, and skl2onnx converts HistGradientBoosting exactly; Spark
MLlib's GBT has no maintained ONNX path. Spark builds the point-in-time training set, which is
the part that grows with history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lambdastack.features import FEATURE_NAMES

PARITY_TOLERANCE = 1e-5


@dataclass(frozen=True)
class TrainedRanker:
    onnx: bytes
    metrics: dict[str, Any]


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s)) if len(np.unique(y)) == 2 else float("nan")


def _logloss(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import log_loss

    return float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1]))


def onnx_predict(model: bytes, x: np.ndarray) -> np.ndarray:
    """P(positive) for rows of FEATURE_NAMES, by onnxruntime (one intra-op thread)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    out = sess.run(None, {"features": x.astype(np.float32)})
    return np.asarray(out[1])[:, 1]


def train(data: pd.DataFrame, validate_from: int) -> TrainedRanker:
    """Train on rows before `validate_from`, measure on the rest, export and verify ONNX."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import HistGradientBoostingClassifier

    fit_rows, val_rows = data[data["t"] < validate_from], data[data["t"] >= validate_from]
    if len(val_rows) == 0 or fit_rows["label"].nunique() < 2:
        fit_rows, val_rows = data.iloc[: int(len(data) * 0.8)], data.iloc[int(len(data) * 0.8) :]
    x_fit = fit_rows[list(FEATURE_NAMES)].to_numpy(np.float32)
    x_val = val_rows[list(FEATURE_NAMES)].to_numpy(np.float32)
    y_fit, y_val = fit_rows["label"].to_numpy(), val_rows["label"].to_numpy()
    clf = HistGradientBoostingClassifier(
        max_iter=100, max_depth=5, learning_rate=0.1, early_stopping=False, random_state=0
    )
    clf.fit(x_fit, y_fit)
    onnx_model = convert_sklearn(
        clf,
        initial_types=[("features", FloatTensorType([None, len(FEATURE_NAMES)]))],
        options={id(clf): {"zipmap": False}},
        target_opset=17,
    )
    onnx_model.graph.name = "lambdastack_ranker"  # skl2onnx names graphs by a random uuid
    model = onnx_model.SerializeToString()
    p_skl = clf.predict_proba(x_val)[:, 1]
    p_onnx = onnx_predict(model, x_val)
    parity = float(np.max(np.abs(p_skl - p_onnx))) if len(x_val) else 0.0
    if parity > PARITY_TOLERANCE:
        raise RuntimeError(f"the ONNX export differs from the trained model by {parity:.2e}")
    base_rate = float(np.clip(y_fit.mean(), 1e-7, 1 - 1e-7))
    metrics = {
        "features": list(FEATURE_NAMES),
        "rows": {
            "train": int(len(fit_rows)),
            "validation": int(len(val_rows)),
            "positive_rate": round(float(data["label"].mean()), 6),
        },
        "validate_from_ms": int(validate_from),
        "auc": _auc(y_val, p_skl),
        "log_loss": _logloss(y_val, p_skl),
        "baseline": {
            "auc_item_pop": _auc(y_val, x_val[:, 0]),
            "log_loss_base_rate": _logloss(y_val, np.full(len(y_val), base_rate)),
        },
        "onnx_max_abs_diff": parity,
        "model": "HistGradientBoostingClassifier(max_iter=100, max_depth=5, learning_rate=0.1)",
    }
    return TrainedRanker(model, metrics)
