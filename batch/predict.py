"""`lambdastack batch predict`: score JSONL instances with a published ONNX ranker inside Spark.

Each input line is one instance: a JSON object with a number for every feature of
lambdastack.features.FEATURE_NAMES, and optionally an "id" that is passed through. Every line
comes out once: in `predictions/` (line, id, score) or in `errors/` (line, error naming the field).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lambdastack.errors import DataError
from lambdastack.features import feature_row
from lambdastack.model import load_ranker
from lambdastack.settings import Settings
from lambdastack.versions import VersionLayout

OUT_SCHEMA = "line long, id string, score double, error string"


def parse_instance(text: str) -> tuple[list[float] | None, str | None, str | None]:
    """(features, id, error) of one JSONL line; the error names every bad field."""
    try:
        obj = json.loads(text)
    except ValueError as e:
        return None, None, f"<line>: is not valid JSON ({e})"
    if not isinstance(obj, dict):
        return None, None, "<line>: must be a JSON object"
    ident = obj.get("id")
    ident = None if ident is None else str(ident)
    values, errors = feature_row(obj, allowed=frozenset({"id"}))
    return (None, ident, "; ".join(errors)) if errors else (values, ident, None)


def score_partition(model: bytes, version: str) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        ranker = load_ranker(model, version)
        for b in batches:
            parsed = [parse_instance(t) for t in b["text"]]
            ok = [n for n, p in enumerate(parsed) if p[0] is not None]
            scores = np.full(len(parsed), np.nan)
            if ok:
                x = np.asarray([parsed[n][0] for n in ok], dtype=np.float32)
                scores[ok] = ranker.predict(x)
            yield pd.DataFrame(
                {
                    "line": b["line"].to_numpy(),
                    "id": [p[1] for p in parsed],
                    "score": [
                        None if p[0] is None else float(s) for p, s in zip(parsed, scores, strict=True)
                    ],
                    "error": [p[2] for p in parsed],
                }
            )

    return run


def predict(
    settings: Settings,
    input_path: Path,
    output: Path,
    version: str | None = None,
    master_url: str | None = None,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Score every line; returns {"version", "lines", "predictions", "errors"}."""
    from batch.session import spark_session

    if not input_path.is_file():
        raise DataError(f"the input {input_path} does not exist or is not a file")
    layout = VersionLayout(settings.path(settings.data.views_dir))
    vid = version or layout.require_current()
    model_file = layout.model_file(vid)
    if not model_file.is_file():
        raise DataError(f"version {vid} has no ranking model ({model_file})")
    spark = spark_session(settings, master_url, app="lambdastack-predict")
    lines = spark.sparkContext.textFile(str(input_path)).zipWithIndex().map(lambda x: (x[1] + 1, x[0]))
    df = spark.createDataFrame(lines, "line long, text string").where("trim(text) != ''")
    model = model_file.read_bytes()
    scored = df.mapInPandas(score_partition(model, vid), OUT_SCHEMA).cache()
    scored.where("error IS NULL").select("line", "id", "score").orderBy("line").coalesce(1).write.mode(
        "overwrite"
    ).json(str(output / "predictions"))
    scored.where("error IS NOT NULL").select("line", "id", "error").orderBy("line").coalesce(1).write.mode(
        "overwrite"
    ).json(str(output / "errors"))
    counts = scored.groupBy((scored.error.isNull()).alias("ok")).count().collect()
    by = {r["ok"]: r["count"] for r in counts}
    summary = {
        "version": vid,
        "lines": int(sum(by.values())),
        "predictions": int(by.get(True, 0)),
        "errors": int(by.get(False, 0)),
    }
    (output / "summary.json").write_text(json.dumps(summary, indent=2))
    echo(
        f"scored {summary['predictions']} of {summary['lines']} lines with {vid}; "
        f"{summary['errors']} errors in {output / 'errors'}"
    )
    return summary
