"""The master dataset: immutable, append-only Parquet of validated events, by event date.

Layout: `{master}/event_date=YYYY-MM-DD/part-{load_id}-{n}.parquet`. A load writes its files
under `{master}/_staging/{load_id}/` first and then renames each one into place, so a reader
never sees a half-written file; names starting with `_` are ignored by readers. Duplicates by
`event_id` are allowed on disk and removed when the batch layer reads.

The catalogue beside it: `{catalogue}/items.parquet` (one row per item, upserted) and
`{catalogue}/tags.parquet` (dated tags: the batch layer uses those written before its as-of).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from lambdastack.tables import EVENTS_SCHEMA, ITEMS_SCHEMA, TAGS_SCHEMA

TAGS_FILE = "tags.parquet"  # in the catalogue folder, beside items.parquet


def append(table: pa.Table, master_dir: Path, load_id: str | None = None) -> int:
    """Append validated events; returns the number of rows written."""
    if table.num_rows == 0:
        return 0
    table = table.cast(EVENTS_SCHEMA)
    load_id = load_id or uuid.uuid4().hex[:12]
    dates = pc.strftime(table["event_time"], format="%Y-%m-%d", locale="C")
    with_date = table.append_column("event_date", dates)
    staging = master_dir / "_staging" / load_id
    shutil.rmtree(staging, ignore_errors=True)
    ds.write_dataset(
        with_date,
        staging,
        format="parquet",
        partitioning=ds.partitioning(pa.schema([("event_date", pa.string())]), flavor="hive"),
        basename_template=f"part-{load_id}-{{i}}.parquet",
        existing_data_behavior="overwrite_or_ignore",
        max_rows_per_file=2_000_000,
        max_partitions=100_000,
    )
    for part in sorted(staging.glob("event_date=*")):
        dest = master_dir / part.name
        dest.mkdir(parents=True, exist_ok=True)
        for f in sorted(part.iterdir()):
            os.replace(f, dest / f.name)
    shutil.rmtree(staging, ignore_errors=True)
    return table.num_rows


def read(master_dir: Path) -> pa.Table:
    """All events on disk (with duplicates), for tools and tests that do not need Spark."""
    if not any(master_dir.glob("event_date=*")):
        return EVENTS_SCHEMA.empty_table()
    dataset = ds.dataset(master_dir, format="parquet", partitioning="hive", ignore_prefixes=["_", "."])
    return dataset.to_table(columns=EVENTS_SCHEMA.names).cast(EVENTS_SCHEMA)


def read_catalogue(catalogue_dir: Path) -> pa.Table:
    """The item catalogue (empty when nothing was loaded)."""
    import pyarrow.parquet as pq

    path = catalogue_dir / "items.parquet"
    return pq.read_table(path).cast(ITEMS_SCHEMA) if path.exists() else ITEMS_SCHEMA.empty_table()


def read_tags(catalogue_dir: Path) -> pa.Table:
    """The dated tags of the catalogue (empty when none were loaded)."""
    import pyarrow.parquet as pq

    path = catalogue_dir / TAGS_FILE
    return pq.read_table(path).cast(TAGS_SCHEMA) if path.exists() else TAGS_SCHEMA.empty_table()


def write_tags(tags: pa.Table, catalogue_dir: Path) -> None:
    """Add dated tags to the catalogue atomically; a (item, tag, instant) already there is kept once."""
    import pyarrow.parquet as pq

    catalogue_dir.mkdir(parents=True, exist_ok=True)
    both = pa.concat_tables([read_tags(catalogue_dir), tags.cast(TAGS_SCHEMA)])
    unique = both.group_by(["item_id", "tag", "tagged_at"]).aggregate([]).select(TAGS_SCHEMA.names)
    unique = unique.sort_by([("tagged_at", "ascending"), ("item_id", "ascending"), ("tag", "ascending")])
    tmp = catalogue_dir / f".tags-{uuid.uuid4().hex[:8]}.parquet"
    pq.write_table(unique.cast(TAGS_SCHEMA), tmp)
    os.replace(tmp, catalogue_dir / TAGS_FILE)


def write_catalogue(items: pa.Table, catalogue_dir: Path) -> None:
    """Upsert items into the catalogue atomically (new rows win; temp file, then rename)."""
    import pyarrow.parquet as pq

    catalogue_dir.mkdir(parents=True, exist_ok=True)
    items = items.cast(ITEMS_SCHEMA)
    old = read_catalogue(catalogue_dir)
    keep = pc.invert(pc.is_in(old["item_id"], value_set=items["item_id"]))
    items = pa.concat_tables([old.filter(keep), items])
    tmp = catalogue_dir / f".items-{uuid.uuid4().hex[:8]}.parquet"
    pq.write_table(items, tmp)
    os.replace(tmp, catalogue_dir / "items.parquet")
