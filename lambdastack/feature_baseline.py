"""The training-set distribution of the ranking features: what the batch layer publishes and the
speed layer's drift monitor compares live traffic with.

Format (the manifest's `feature_baseline`, or `feature_baseline.json` in the version directory):
    {"<feature>": {"edges": [e1 < e2 < ...], "proportions": [p0, p1, ..., pk]}}
with k = len(edges); bin 0 holds x < e1, bin i holds e_i <= x < e_(i+1), bin k holds x >= e_k.
Edges are the distinct deciles of the training rows, so each bin holds about a tenth of them.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

import numpy as np

FILE = "feature_baseline.json"


def bin_of(edges: Sequence[float], x: float) -> int:
    """The bin of a value (see the module docstring)."""
    return bisect.bisect_right(edges, x)


def build(values: np.ndarray, names: Sequence[str], bins: int = 10) -> dict[str, Any]:
    """The baseline of feature rows (one column per name, in order)."""
    out: dict[str, Any] = {}
    for k, name in enumerate(names):
        column = np.asarray(values[:, k], dtype=np.float64)
        column = column[np.isfinite(column)]
        if len(column) == 0:
            continue
        quantiles = np.quantile(column, [q / bins for q in range(1, bins)])
        edges = sorted({round(float(e), 9) for e in quantiles})
        counts = np.bincount(np.searchsorted(edges, column, side="right"), minlength=len(edges) + 1)
        out[name] = {"edges": edges, "proportions": [round(float(c) / len(column), 9) for c in counts]}
    return out
