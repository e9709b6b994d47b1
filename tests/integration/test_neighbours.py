"""batch/neighbours.py on real (local) Spark equals the plain-Python reference of its definition
(tests/unit/test_neighbours.py): ids, order and scores; content neighbours for the rest."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import numpy as np
import pytest

from batch.embeddings import ItemVectors
from batch.neighbours import item_neighbours
from batch.session import spark_session
from batch.vectors import normalize_rows
from lambdastack.settings import Settings
from tests.unit.test_neighbours import HAND, Ev, covisit_reference

pytestmark = pytest.mark.integration
TYPES = ("view", "click", "like", "skip", "watch")


def _events() -> list[Ev]:
    """Six users over items i0..i7 with repeats, skips and equal instants (event_id orders
    them), plus the hand-worked users over x, y, z (an exact score tie); i8 is only skipped."""
    rng = np.random.default_rng(12)
    out = list(HAND)
    for u in range(6):
        for k in range(int(rng.integers(8, 30))):
            item = f"i{int(rng.integers(0, 8))}"
            etype = TYPES[int(rng.integers(0, len(TYPES)))]
            event_id = f"g{int(rng.integers(0, 99)):02d}-{u}-{k}"  # equal instants: not in k order
            out.append(Ev(event_id, f"u{u + 10}", item, etype, int(rng.integers(0, 12))))
    out.append(Ev("s1", "u10", "i8", "skip", 3))
    return out


def _vectors(ids: list[str]) -> ItemVectors:
    content = normalize_rows(np.random.default_rng(3).standard_normal((len(ids), 4)))
    content[ids.index("cold-b")] = 0.0  # an item without text: every cosine 0, ties by id
    return ItemVectors(ids, content, content, np.zeros(len(ids), dtype=bool))


def _content_reference(vectors: ItemVectors, item: str, n: int) -> tuple[list[str], list[float]]:
    ids, c = vectors.item_ids, vectors.content
    r = ids.index(item)
    sims = c @ c[r]
    order = sorted((j for j in range(len(ids)) if j != r), key=lambda j: (-sims[j], ids[j]))[:n]
    return [ids[j] for j in order], [float(sims[j]) for j in order]


@pytest.mark.parametrize(("window", "n"), [(3, 4), (20, 100)])
def test_spark_covisit_neighbours_equal_the_reference(test_settings: Settings, window: int, n: int):
    spark = spark_session(test_settings)
    events = _events()
    rows = [(*e[:4], 1.0, datetime.fromtimestamp(e.t / 1000, UTC)) for e in events]
    schema = "event_id string, user_id string, item_id string, type string, value double"
    df = spark.createDataFrame(rows, f"{schema}, event_time timestamp").repartition(3)
    ids = sorted({e.item_id for e in events} | {"cold-a", "cold-b"})
    vectors = _vectors(ids)

    started, rows_out = time.monotonic(), []
    kinds = item_neighbours(spark, df, vectors, window, n, lambda view: rows_out.extend(view.collect()))
    print(f"item_neighbours on {len(events)} events, {len(ids)} items: {time.monotonic() - started:.1f}s")
    assert [r["item_id"] for r in rows_out] == sorted(ids)  # the view is by item_id
    got = {r["item_id"]: r for r in rows_out}

    expected = covisit_reference(events, window, n)
    assert {"x", "y", "z"} <= set(expected) and "i8" not in expected
    assert expected["x"][0][:2] == ["y", "z"] and expected["x"][1][0] == expected["x"][1][1]  # the tie
    assert set(got) == set(ids)  # every catalogue item has some neighbour here
    for item, (neigh, scores) in expected.items():
        row = got[item]
        assert row["kind"] == "covisit" and row["neighbours"] == neigh, item
        assert row["scores"] == pytest.approx(scores, rel=0, abs=1e-9), item
    assert kinds == {"covisit": len(expected), "content": len(ids) - len(expected)}
    for item in sorted(set(ids) - set(expected)):  # i8 (skipped only), cold-a, cold-b
        row = got[item]
        neigh, scores = _content_reference(vectors, item, n)
        assert row["kind"] == "content" and row["neighbours"] == neigh, item
        assert row["scores"] == pytest.approx(scores, rel=0, abs=1e-9), item
    assert got["cold-b"]["neighbours"] == [i for i in ids if i != "cold-b"][:n]
