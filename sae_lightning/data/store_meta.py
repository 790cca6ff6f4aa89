"""A store's metadata.parquet (id, text, domain per row), written and read in row groups so no
stage needs every text in memory: row group i holds exactly the rows of embedding shard i."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string()), ("domain", pa.string())])


def write_metadata(chunks: Iterable, dest: Path, rows_per_group: int) -> int:
    """Stream chunks (anything with `ids`, `texts`, `domains` lists) into `dest` in row groups of
    `rows_per_group` rows (the last may be shorter);
    return the row count. Holds at most one row group plus one chunk in memory."""
    buf: dict[str, list] = {"id": [], "text": [], "domain": []}
    rows = 0
    with pq.ParquetWriter(dest, SCHEMA) as out:

        def flush(n: int) -> None:
            out.write_table(pa.table({k: v[:n] for k, v in buf.items()}, schema=SCHEMA), row_group_size=n)
            for v in buf.values():
                del v[:n]

        for chunk in chunks:
            buf["id"] += chunk.ids
            buf["text"] += chunk.texts
            buf["domain"] += chunk.domains
            rows += len(chunk.texts)
            while len(buf["text"]) >= rows_per_group:
                flush(rows_per_group)
        if buf["text"]:
            flush(len(buf["text"]))
    return rows


def read_row_group(path: Path, i: int, columns: list[str] | None = None) -> pd.DataFrame:
    return pq.ParquetFile(path).read_row_group(i, columns=columns).to_pandas()


def iter_metadata(path: Path, columns: list[str] | None = None, batch_rows: int = 65536) -> Iterator[pd.DataFrame]:
    """The metadata in order, `batch_rows` rows at a time (a DataFrame indexed by row number)."""
    start = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=columns):
        frame = batch.to_pandas()
        frame.index = pd.RangeIndex(start, start + len(frame))
        start += len(frame)
        yield frame


def read_rows(path: Path, rows, columns: list[str] | None = None) -> pd.DataFrame:
    """The metadata of the given row numbers (any order, repeats allowed), read row group by row
    group: only the groups that hold one of them are decoded."""
    import numpy as np

    rows = np.asarray(rows, dtype=np.int64)
    pf = pq.ParquetFile(path)
    bounds = np.cumsum([0] + [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)])
    if len(rows) and (rows.min() < 0 or rows.max() >= bounds[-1]):
        raise IndexError(f"row numbers out of range 0..{bounds[-1] - 1}")
    groups = np.searchsorted(bounds, rows, side="right") - 1
    parts = []
    for g in np.unique(groups):
        table = pf.read_row_group(int(g), columns=columns).to_pandas()
        parts.append(table.iloc[rows[groups == g] - bounds[g]].set_axis(np.flatnonzero(groups == g)))
    cols = columns or list(SCHEMA.names)
    frame = pd.concat(parts).sort_index() if parts else pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    return frame.set_axis(pd.Index(rows)).rename_axis(None)
