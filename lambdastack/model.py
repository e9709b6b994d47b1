"""The published ranking model in onnxruntime: one session per version, one run per call (a feed
request in the API, a scored event in the speed layer, a partition in batch prediction)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lambdastack.features import FEATURE_NAMES


@dataclass(frozen=True)
class Ranker:
    """An ONNX ranker of one published version: a score per row of FEATURE_NAMES, higher first (a
    LambdaRank model's raw score; a classifier's P(positive))."""

    version: str
    session: Any

    def predict(self, x: np.ndarray) -> np.ndarray:
        """One onnxruntime run over all rows; float64 scores."""
        if len(x) == 0:
            return np.zeros(0)
        out = self.session.run(None, {"features": np.ascontiguousarray(x, dtype=np.float32)})
        # a ranker's one output is (n, 1) scores; a classifier's last is (n, 2) probabilities
        scores = np.asarray(out[-1], dtype=np.float64)
        return scores[:, -1] if scores.ndim == 2 else scores


def load_ranker(model: bytes, version: str) -> Ranker:
    """An inference session on one intra-op thread (the callers' concurrency is their requests,
    Flink's parallelism or Spark's tasks); raises ValueError if the model takes other features."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    width = session.get_inputs()[0].shape[1]
    if isinstance(width, int) and width != len(FEATURE_NAMES):
        raise ValueError(f"the model of {version} takes {width} features, not {len(FEATURE_NAMES)}")
    ranker = Ranker(version, session)
    ranker.predict(np.zeros((1, len(FEATURE_NAMES))))  # the first run allocates; not on a request
    return ranker
