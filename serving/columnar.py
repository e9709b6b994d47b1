"""Per-user batch views held in columnar form: a user's row is found through one dict of ids, and
its lists are slices of one int32 array of item numbers (CSR), its profile a row of Arrow columns.

A version of a million users is then a few arrays, not millions of Python tuples, sets and dicts:
it loads in a fraction of the time, and the garbage collector has nothing of it to walk. A
request materialises only its own user's values, and serving.feed.batch_side keeps those for the
version's lifetime.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

V = TypeVar("V")


class _Keyed(Mapping[str, V]):
    """A mapping whose keys are the rows of columns: `_rows` numbers them."""

    _rows: dict[str, int]

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


class ItemLists(_Keyed[tuple[str, ...]]):
    """key -> tuple of item ids, from a list<string> column (CSR over `vocabulary` numbers)."""

    def __init__(self, keys: list[str], lists: pa.ChunkedArray | pa.Array, vocabulary: np.ndarray):
        self._rows = {k: n for n, k in enumerate(keys)}
        arr = lists.combine_chunks() if isinstance(lists, pa.ChunkedArray) else lists
        arr = pc.fill_null(arr, pa.scalar([], type=arr.type))
        offsets = np.asarray(arr.offsets.to_numpy(), dtype=np.int64)
        self._offsets = offsets - offsets[0]  # flatten() starts at the first list's values
        flat = arr.flatten()
        vocab = pa.array(vocabulary.tolist(), type=pa.string())
        numbers = pc.index_in(flat.cast(pa.string()), value_set=vocab)
        if numbers.null_count:  # every value is in the vocabulary the loader passes
            raise ValueError("a list holds an item outside the version's vocabulary")
        self._items = numbers.to_numpy().astype(np.int32)
        self._vocabulary = vocabulary

    def _slice(self, key: str) -> np.ndarray | None:
        n = self._rows.get(key)
        if n is None:
            return None
        return self._items[self._offsets[n] : self._offsets[n + 1]]

    def __getitem__(self, key: str) -> tuple[str, ...]:
        got = self._slice(key)
        if got is None:
            raise KeyError(key)
        return tuple(self._vocabulary[got].tolist())


class ItemSets(_Keyed[frozenset[str]]):
    """key -> frozenset of item ids (the same CSR as ItemLists)."""

    def __init__(self, lists: ItemLists):
        self._lists, self._rows = lists, lists._rows

    def __getitem__(self, key: str) -> frozenset[str]:
        return frozenset(self._lists[key])


class Rows(_Keyed[dict[str, Any]]):
    """key -> one row of an Arrow table as a dict (the columns other than the key)."""

    def __init__(self, table: pa.Table, key: str):
        self._rows = {k: n for n, k in enumerate(table[key].to_pylist())}
        self._columns = [(name, table[name].combine_chunks()) for name in table.column_names]

    def __getitem__(self, key: str) -> dict[str, Any]:
        n = self._rows[key]
        return {name: col[n].as_py() for name, col in self._columns}
