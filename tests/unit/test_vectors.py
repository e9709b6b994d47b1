import numpy as np
import pytest

from batch.vectors import combine, normalize_rows, top_n

pytestmark = pytest.mark.unit


def test_combined_vectors_are_unit_and_cold_rows_keep_the_content_direction():
    content = np.array([[3.0, 4.0], [1.0, 0.0]])
    collab = np.array([[0.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    out = combine(content, collab, np.array([True, False]))
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0)
    assert np.allclose(out[1], [1.0, 0.0, 0.0, 0.0, 0.0])
    assert np.allclose(out[0], [0.6 * np.sqrt(0.5), 0.8 * np.sqrt(0.5), 0.0, np.sqrt(0.5), 0.0])


def test_zero_rows_stay_zero():
    assert np.array_equal(normalize_rows(np.zeros((1, 3))), np.zeros((1, 3)))


def test_top_n_excludes_and_orders():
    items = np.eye(5)
    q = np.array([[0.1, 0.9, 0.5, 0.7, 0.0]])
    idx, sc = top_n(q, items, 3)
    assert idx.tolist() == [[1, 3, 2]] and np.allclose(sc, [[0.9, 0.7, 0.5]])
    idx, _ = top_n(q, items, 3, exclude=[np.array([1, 3])])
    assert idx.tolist() == [[2, 0, 4]]
