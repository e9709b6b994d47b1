"""`eval replay --retrains 2` on a tiny MovieLens folder with the real batch job: two versions are
published as of the boundaries, the replay answers from each after its boundary, and the same
replay again (the versions reused) gives the same result."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lambdastack.versions import VersionLayout
from tests.conftest import make_isolated
from tools.evaluation.replay import run

pytestmark = pytest.mark.integration
DAY_S = 86_400
GENRES = ("Action", "Comedy", "Drama", "Horror")
RETRAIN_LINE = re.compile(r"^\[eval\] retrain (\d+)/2 as of \S+ \((\d+) ms\): (v\d{6}) in \d+ s$")


def tiny_movielens(folder: Path, users: int = 40, items: int = 80, per_user: int = 50) -> int:
    """ratings.csv and movies.csv of users who mostly rate one genre, over 60 days; the row count."""
    rng = np.random.default_rng(7)
    folder.mkdir()
    movies = ["movieId,title,genres"] + [f"{m},Movie {m} (2001),{GENRES[m % 4]}" for m in range(1, items + 1)]
    (folder / "movies.csv").write_text("\n".join(movies) + "\n")
    rows = ["userId,movieId,rating,timestamp"]
    start = 1_500_000_000
    for u in range(1, users + 1):
        liked = [m for m in range(1, items + 1) if m % 4 == u % 4]
        others = [m for m in range(1, items + 1) if m % 4 != u % 4]
        picks = (
            rng.choice(liked, 15, replace=False).tolist()
            + rng.choice(others, per_user - 15, replace=False).tolist()
        )
        times = np.sort(rng.integers(start, start + 60 * DAY_S, per_user))
        for m, t in zip(rng.permutation(picks), times, strict=True):
            rating = rng.choice([4.0, 4.5, 5.0]) if m % 4 == u % 4 else rng.choice([1.0, 2.5, 3.5])
            rows.append(f"{u},{m},{rating},{t}")
    (folder / "ratings.csv").write_text("\n".join(rows) + "\n")
    return len(rows) - 1


def without_timings(result: dict[str, Any]) -> dict[str, Any]:
    """The result without what measures the machine (wall, build and query times)."""
    variants = {n: {k: v for k, v in d.items() if k != "ms_per_query"} for n, d in result["variants"].items()}
    retrains = dict(result["retrains"])
    retrains["runs"] = [
        {k: v for k, v in r.items() if k not in ("build_s", "reused")} for r in retrains["runs"]
    ]
    retrains.pop("build_s")
    skip = ("wall_s", "measured_at", "variants", "retrains")
    return {**{k: v for k, v in result.items() if k not in skip}, "variants": variants, "retrains": retrains}


def test_two_retrains_publish_versions_as_of_the_boundaries_and_the_replay_follows_them(
    base_env: dict[str, str], tmp_path: Path, spark: Any
):
    s = make_isolated(base_env, tmp_path).settings
    dataset, work = tmp_path / "ml", tmp_path / "work"
    total = tiny_movielens(dataset)
    lines: list[str] = []
    result = run(s, dataset, 0.5, 10, work, echo=lines.append, retrains=2)

    rt = result["retrains"]
    at = rt["boundaries_ms"]
    assert rt["k"] == 2 and len(at) == 2 and result["as_of_ms"] < at[0] < at[1]
    assert all(b % (s.batch.bucket_s * 1000) == 0 for b in at)
    layout = VersionLayout(work / "views")
    versions = [r["version"] for r in rt["runs"]]
    assert versions == ["v000002", "v000003"] and not any(r["reused"] for r in rt["runs"])
    for b, r in zip(at, rt["runs"], strict=True):
        manifest = layout.manifest(r["version"])
        assert int(manifest["as_of_ms"]) == b == r["as_of_ms"]
        assert int(manifest["input"]["events"]) == r["events"]  # every event before the boundary
    progress = [m.groups() for line in lines if (m := RETRAIN_LINE.match(line))]
    assert progress == [("1", str(at[0]), versions[0]), ("2", str(at[1]), versions[1])], lines

    segments = rt["segments"]
    assert [seg["version"] for seg in segments] == [result["version"], *versions]
    assert [seg["as_of_ms"] for seg in segments] == [result["as_of_ms"], *at]
    assert (
        sum(seg["events"] for seg in segments)
        == result["events"]["replayed"]
        == total - result["events"]["history"]
    )
    assert all(seg["queries"] > 0 for seg in segments)
    assert segments[1]["last_query_ms"] < at[1] <= segments[2]["first_query_ms"]  # v000003 after b_2
    assert segments[0]["last_query_ms"] < at[0] <= segments[1]["first_query_ms"]
    assert sum(seg["queries"] for seg in segments) == result["variants"]["merged"]["segments"]["all"]["count"]

    again = run(s, dataset, 0.5, 10, work, echo=lambda _m: None, retrains=2)
    assert all(r["reused"] for r in again["retrains"]["runs"])
    assert without_timings(again) == without_timings(result)
