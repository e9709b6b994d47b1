"""Per-user views in columnar form read back exactly what the rows held."""

import numpy as np
import pyarrow as pa
import pytest

from serving.columnar import ItemLists, ItemSets, Rows

pytestmark = pytest.mark.unit
VOCAB = np.asarray(["a", "b", "c", "d"], dtype=object)


def test_lists_and_sets_give_each_key_its_items_in_order():
    lists = ItemLists(["u1", "u2", "u3"], pa.array([["c", "a", "c"], None, []]), VOCAB)
    assert lists["u1"] == ("c", "a", "c") and lists["u2"] == () and lists["u3"] == ()
    assert lists.get("nobody", ()) == () and "u1" in lists and "x" not in lists
    assert len(lists) == 3 and list(lists) == ["u1", "u2", "u3"]
    sets = ItemSets(lists)
    assert sets["u1"] == frozenset({"a", "c"}) and sets.get("nobody", frozenset()) == frozenset()
    chunked = pa.chunked_array([pa.array([["d"]]), pa.array([["b", "a"]])])
    assert dict(ItemLists(["x", "y"], chunked, VOCAB)) == {"x": ("d",), "y": ("b", "a")}
    sliced = pa.array([["a"], ["b", "c"]]).slice(1)  # its offsets do not start at 0
    assert ItemLists(["x"], sliced, VOCAB)["x"] == ("b", "c")


def test_an_item_outside_the_vocabulary_is_refused_at_load():
    with pytest.raises(ValueError, match="outside the version's vocabulary"):
        ItemLists(["u1"], pa.array([["zzz"]]), VOCAB)


def test_rows_are_dicts_of_every_column():
    table = pa.table({"user_id": ["u1", "u2"], "n": [3, 5], "interest": [[0.5, 1.0], None]})
    rows = Rows(table, "user_id")
    assert rows["u2"] == {"user_id": "u2", "n": 5, "interest": None}
    assert rows.get("u1") == {"user_id": "u1", "n": 3, "interest": [0.5, 1.0]}
    assert rows.get("u3") is None and len(rows) == 2
