"""The ranking model: LightGBM LambdaRank trees over the feed's own candidate pools (the Spark-built
training set, batch.training), exported to ONNX and checked against the trained model with
onnxruntime.

Why learning to rank: a query is one pool, and only the order within it matters; LambdaRank
optimises NDCG over each pool directly, where a classifier spends capacity on separating pools
(some users' pools are easier than others'). Why LightGBM over Spark MLlib: the sample fits in
memory by design (capped), the model runs in the API per request, and onnxmltools converts its
trees, exactly once their split thresholds are floored to float32 (`float32_thresholds`; to the
rounding of float32 sums otherwise); MLlib's GBT has no ranking objective and no maintained ONNX
path. Spark builds the training set, which is the part that grows with history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lambdastack.features import FEATURE_NAMES

PARITY_TOLERANCE = 1e-4  # scores, not probabilities: trees compare float32 features in ONNX
NDCG_K = 10
PARAMS: dict[str, Any] = {
    "objective": "lambdarank",
    "n_estimators": 100,
    "learning_rate": 0.1,
    "num_leaves": 15,
    "min_child_samples": 50,
    "deterministic": True,
    "force_row_wise": True,
    # one thread: OpenMP threads spin-wait, and on this 2-core host at load 4-6 a fit of 150k rows
    # took 12 s of CPU (27 s wall) with one thread and 104 s of CPU (176 s wall) with two
    "n_jobs": 1,
    "random_state": 0,
    "verbose": -1,
}


@dataclass(frozen=True)
class TrainedRanker:
    onnx: bytes
    metrics: dict[str, Any]


def onnx_predict(model: bytes, x: np.ndarray) -> np.ndarray:
    """The model's scores for rows of FEATURE_NAMES, by onnxruntime (one intra-op thread)."""
    from lambdastack.model import load_ranker

    return load_ranker(model, "check").predict(x)


def pool_ndcg(groups: np.ndarray, labels: np.ndarray, scores: np.ndarray, k: int = NDCG_K) -> float:
    """Mean NDCG@k over pools (`groups`: each row's pool, rows of a pool contiguous) with one
    positive each; ties count against the positive."""
    if not len(groups):
        return float("nan")
    frame = pd.DataFrame({"g": groups, "y": labels, "s": scores})
    pos = frame[frame["y"] == 1].set_index("g")["s"]
    above = frame.assign(p=frame["g"].map(pos)).query("y == 0 and s >= p").groupby("g").size()
    rank = above.reindex(pos.index, fill_value=0).to_numpy()
    return float(np.mean(np.where(rank < k, 1.0 / np.log2(rank + 2.0), 0.0)))


def _sizes(groups: pd.Series) -> np.ndarray:
    starts = np.flatnonzero(np.r_[True, groups.to_numpy()[1:] != groups.to_numpy()[:-1]])
    return np.diff(np.r_[starts, len(groups)])


def float32_thresholds(booster: Any) -> Any:
    """The booster with every split threshold t replaced by the largest float32 at most t.

    LightGBM compares a feature with a double threshold, the ONNX export with that threshold
    rounded to the nearest float32; when the rounding goes up onto a float32 feature value v with
    t < v, LightGBM sends v right and ONNX left (seen on ml-latest-small: a knn_score of
    0.08997897 against t = 0.089978967, one tree, 7e-2 in the score). For a float32 x, x <= t
    exactly when x <= floor32(t), so on the float32 features `train` gives it the model stays the
    same function and its export becomes exact. Numerical splits only (no categorical features)."""
    import lightgbm as lgb

    # without `tree_sizes` (byte counts the edit changes) LightGBM reads the trees one after another
    lines = [line for line in booster.model_to_string().split("\n") if not line.startswith("tree_sizes=")]
    for n, line in enumerate(lines):
        if line.startswith("threshold="):
            t = np.array(line.removeprefix("threshold=").split(), dtype=np.float64)
            f = t.astype(np.float32)
            f = np.where(f.astype(np.float64) > t, np.nextafter(f, np.float32(-np.inf)), f)
            lines[n] = "threshold=" + " ".join(repr(float(v)) for v in f)
    return lgb.Booster(model_str="\n".join(lines))


def train(data: pd.DataFrame, validate_from: int) -> TrainedRanker:
    """Fit on pools before `validate_from` and measure on the rest; refit on every pool, export
    the refit model and verify its ONNX."""
    import lightgbm as lgb
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    data = data.sort_values(["t", "qid", "item_id"], kind="stable")
    fit_rows, val_rows = data[data["t"] < validate_from], data[data["t"] >= validate_from]
    if len(val_rows) == 0 or fit_rows["label"].nunique() < 2:
        cut = data["qid"].drop_duplicates().iloc[int(data["qid"].nunique() * 0.8) :]
        val = data["qid"].isin(set(cut))
        fit_rows, val_rows = data[~val], data[val]
    if fit_rows["label"].nunique() < 2:
        raise ValueError("the training set holds no pool with both a positive and a negative")
    x_fit = fit_rows[list(FEATURE_NAMES)].to_numpy(np.float32)
    x_val = val_rows[list(FEATURE_NAMES)].to_numpy(np.float32)
    measured = lgb.LGBMRanker(**PARAMS)
    measured.fit(x_fit, fit_rows["label"].to_numpy(), group=_sizes(fit_rows["qid"]))
    s_val = np.asarray(measured.predict(x_val.astype(np.float64))) if len(x_val) else np.zeros(0)
    # measured on the newest pools, then refit with the same parameters on every pool: the
    # published model learns from the newest behaviour too
    model = lgb.LGBMRanker(**PARAMS)
    model.fit(
        data[list(FEATURE_NAMES)].to_numpy(np.float32), data["label"].to_numpy(), group=_sizes(data["qid"])
    )
    booster = float32_thresholds(model.booster_)
    onnx_model = onnxmltools.convert_lightgbm(
        booster,
        initial_types=[("features", FloatTensorType([None, len(FEATURE_NAMES)]))],
        target_opset=15,  # the newest onnxmltools 1.16 converts LightGBM to
    )
    onnx_model.graph.name = "lambdastack_ranker"
    onnx_bytes = onnx_model.SerializeToString()
    s_lgb = np.asarray(booster.predict(x_val.astype(np.float64))) if len(x_val) else np.zeros(0)
    s_onnx = onnx_predict(onnx_bytes, x_val) if len(x_val) else np.zeros(0)
    parity = float(np.max(np.abs(s_lgb - s_onnx))) if len(x_val) else 0.0
    if parity > PARITY_TOLERANCE:
        raise RuntimeError(f"the ONNX export differs from the trained model by {parity:.2e}")
    metrics = _metrics(data, fit_rows, val_rows, x_val, s_val, parity, model)
    metrics["validate_from_ms"] = int(validate_from)
    return TrainedRanker(onnx_bytes, metrics)


def _metrics(
    data: pd.DataFrame,
    fit_rows: pd.DataFrame,
    val_rows: pd.DataFrame,
    x_val: np.ndarray,
    s_val: np.ndarray,
    parity: float,
    model: Any,
) -> dict[str, Any]:
    """What is stored beside the model: rows, the validation pools' NDCG and its baselines."""
    groups, labels = val_rows["qid"].to_numpy(), val_rows["label"].to_numpy()
    column = {name: x_val[:, n] for n, name in enumerate(FEATURE_NAMES)}
    return {
        "features": list(FEATURE_NAMES),
        "rows": {
            "train": int(len(fit_rows)),
            "validation": int(len(val_rows)),
            "published_model": int(len(data)),
            "pools": {"train": int(fit_rows["qid"].nunique()), "validation": int(val_rows["qid"].nunique())},
            "positive_rate": round(float(data["label"].mean()), 6),
        },
        f"pool_ndcg@{NDCG_K}": pool_ndcg(groups, labels, s_val),
        "baseline": {
            f"pool_ndcg@{NDCG_K}_knn_score": pool_ndcg(groups, labels, column["knn_score"]),
            f"pool_ndcg@{NDCG_K}_item_pop": pool_ndcg(groups, labels, column["item_pop"]),
        },
        "onnx_max_abs_diff": parity,
        "model": f"lightgbm.LGBMRanker({', '.join(f'{k}={v}' for k, v in PARAMS.items())})",
        "importance_gain": dict(
            zip(
                FEATURE_NAMES,
                (round(float(g), 3) for g in model.booster_.feature_importance("gain")),
                strict=True,
            )
        ),
    }
