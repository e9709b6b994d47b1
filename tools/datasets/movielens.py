"""Read a MovieLens-format folder: ml-latest CSVs (ratings/movies/tags) or the older u.data/u.item.

Each rating becomes a `rating` event with the rating as value and a deterministic event_id
(`ml-{user}-{item}-{timestamp}`), so loading the same folder twice adds no new event after
de-duplication. Tags (tags.csv) become dated tags in the catalogue: a batch version uses only the
tags written before its as-of, so nothing after the cut leaks into its content vectors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from lambdastack.errors import DataError
from lambdastack.tables import ITEMS_SCHEMA, TAGS_SCHEMA, events_table

# the 19 genre flags of u.item, used when u.genre is absent
_OLD_GENRES = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]


@dataclass
class MovieLens:
    events: pa.Table
    items: pa.Table
    tags: pa.Table = field(default_factory=TAGS_SCHEMA.empty_table)  # dated (tags.csv timestamps)
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (source line, reason)
    source_format: str = ""


def detect_format(folder: Path) -> str:
    if (folder / "ratings.csv").exists():
        return "csv"
    if (folder / "u.data").exists():
        return "tsv"
    raise DataError(
        f"{folder} is not a MovieLens folder: it has neither ratings.csv (ml-latest) nor u.data (ml-100k)"
    )


def _ratings_to_events(df: pd.DataFrame, first_line: int) -> tuple[pa.Table, list[tuple[int, str]]]:
    rejected: list[tuple[int, str]] = []
    rating = pd.to_numeric(df["rating"], errors="coerce")
    ts = pd.to_numeric(df["timestamp"], errors="coerce")
    checks = [
        (df["user"].isna() | (df["user"].astype(str).str.strip() == ""), "user id is empty"),
        (df["item"].isna() | (df["item"].astype(str).str.strip() == ""), "item id is empty"),
        (rating.isna() | (rating < 0) | (rating > 5), "rating must be a number between 0 and 5"),
        (ts.isna() | (ts < 0), "timestamp must be a non-negative number of seconds"),
    ]
    bad = np.zeros(len(df), dtype=bool)
    for mask, reason in checks:
        m = mask.to_numpy() & ~bad
        rejected += [(int(i) + first_line, reason) for i in np.flatnonzero(m)]
        bad |= mask.to_numpy()
    rejected.sort()
    good = df[~bad]
    users = good["user"].astype(str).str.strip()
    items = good["item"].astype(str).str.strip()
    secs = ts[~bad].astype("int64")
    ids = "ml-" + users + "-" + items + "-" + secs.astype(str)
    table = events_table(
        {
            "event_id": ids.tolist(),
            "user_id": users.tolist(),
            "item_id": items.tolist(),
            "type": ["rating"] * len(good),
            "value": rating[~bad].astype(float).tolist(),
            "event_time": (secs * 1000).tolist(),
        }
    )
    return table, rejected


def _read_csv_folder(folder: Path) -> MovieLens:
    ratings = pd.read_csv(folder / "ratings.csv", dtype=str).rename(
        columns={"userId": "user", "movieId": "item"}
    )
    missing = {"user", "item", "rating", "timestamp"} - set(ratings.columns)
    if missing:
        raise DataError(f"{folder / 'ratings.csv'} lacks the columns {sorted(missing)}")
    events, rejected = _ratings_to_events(ratings, first_line=2)
    items = pd.DataFrame({"item_id": [], "title": [], "genres": []})
    if (folder / "movies.csv").exists():
        movies = pd.read_csv(folder / "movies.csv", dtype=str)
        items = pd.DataFrame(
            {
                "item_id": movies["movieId"].str.strip(),
                "title": movies["title"],
                "genres": movies["genres"]
                .fillna("")
                .map(lambda g: [x for x in g.split("|") if x and x != "(no genres listed)"]),
            }
        )
    tags = _dated_tags(folder / "tags.csv")
    return MovieLens(events, _items_table(items, {}), tags, rejected=rejected, source_format="csv")


def _dated_tags(path: Path) -> pa.Table:
    """tags.csv as dated tags (lower-cased, trimmed; rows without an item, tag or time left out):
    a batch version as of T sees only the tags written before T."""
    if not path.exists():
        return TAGS_SCHEMA.empty_table()
    t = pd.read_csv(path, dtype=str).dropna(subset=["movieId", "tag", "timestamp"])
    seconds = pd.to_numeric(t["timestamp"], errors="coerce")
    t = t[seconds.notna()]
    return pa.table(
        {
            "item_id": t["movieId"].str.strip().tolist(),
            "tag": t["tag"].str.strip().str.lower().tolist(),
            "tagged_at": pa.array(
                (seconds[seconds.notna()] * 1000).astype("int64").tolist(), pa.int64()
            ).cast(pa.timestamp("ms", tz="UTC")),
        },
        schema=TAGS_SCHEMA,
    )


def _read_tsv_folder(folder: Path) -> MovieLens:
    ratings = pd.read_csv(
        folder / "u.data", sep="\t", header=None, dtype=str, names=["user", "item", "rating", "timestamp"]
    )
    events, rejected = _ratings_to_events(ratings, first_line=1)
    items = pd.DataFrame({"item_id": [], "title": [], "genres": []})
    if (folder / "u.item").exists():
        genres = _OLD_GENRES
        if (folder / "u.genre").exists():
            g = pd.read_csv(
                folder / "u.genre", sep="|", header=None, names=["name", "idx"], encoding="latin-1"
            ).dropna()
            genres = list(g.sort_values("idx")["name"])
        raw = pd.read_csv(folder / "u.item", sep="|", header=None, encoding="latin-1", dtype=str)
        flags = raw.iloc[:, 5 : 5 + len(genres)].fillna("0").to_numpy() == "1"
        items = pd.DataFrame(
            {
                "item_id": raw[0].str.strip(),
                "title": raw[1],
                "genres": [
                    [genres[j] for j in np.flatnonzero(row) if genres[j] != "unknown"] for row in flags
                ],
            }
        )
    return MovieLens(events, _items_table(items, {}), rejected=rejected, source_format="tsv")


def _items_table(items: pd.DataFrame, tags: dict[str, list[str]]) -> pa.Table:
    ids = list(items["item_id"])
    return pa.table(
        {
            "item_id": ids,
            "title": list(items["title"]),
            "genres": list(items["genres"]),
            "tags": [tags.get(i, []) for i in ids],
        },
        schema=ITEMS_SCHEMA,
    )


def read_folder(folder: Path) -> MovieLens:
    """Read and validate a MovieLens folder of either format."""
    if not folder.is_dir():
        raise DataError(f"{folder} does not exist or is not a folder")
    fmt = detect_format(folder)
    data = _read_csv_folder(folder) if fmt == "csv" else _read_tsv_folder(folder)
    if data.events.num_rows == 0:
        raise DataError(f"{folder} holds no valid rating")
    return data
