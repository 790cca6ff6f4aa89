"""Tabular text sources: any Hugging Face `datasets` source (hub id, streamed, or `save_to_disk`
folder) and local csv / tsv / jsonl / parquet files, read in chunks. Both pick a text column and a
domain column (or a fixed domain)."""

from __future__ import annotations

import glob
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pandas as pd

from ...schemas.domain import FilesConfig, HFConfig
from .corpus import SourceError, TextChunk
from .stream import StreamedSource


def _csv(sep: str):
    return lambda p, n, cols: pd.read_csv(p, sep=sep, chunksize=n)


def _parquet(p, n, cols):
    import pyarrow.parquet as pq

    # Only the columns used are read; a missing one is named by the column check on the first chunk.
    pf = pq.ParquetFile(p)
    have = [c for c in cols if c in pf.schema_arrow.names]
    if len(have) < len(cols):
        yield pf.schema_arrow.empty_table().to_pandas()
        return
    for batch in pf.iter_batches(batch_size=n, columns=have):
        yield batch.to_pandas()


_READERS = {  # path, rows per chunk, columns used -> iterator of DataFrames
    ".csv": _csv(","),
    ".tsv": _csv("\t"),
    ".jsonl": lambda p, n, cols: pd.read_json(p, lines=True, chunksize=n),
    ".json": lambda p, n, cols: pd.read_json(p, lines=True, chunksize=n),
    ".parquet": _parquet,
}


class _Table(StreamedSource):
    """What both tabular sources share: column roles and how a DataFrame chunk becomes rows."""

    def columns(self) -> list[str]:
        cfg = self.cfg
        return [c for c in (cfg.text_column, cfg.domain_column, cfg.id_column) if c]

    def chunk_of(
        self, frame: pd.DataFrame, where: str, first_id: int, row_name: Callable[[int], str] | None = None
    ) -> TextChunk:
        """The frame's rows as a chunk; `row_name(i)` names its row i in an error (default: `where`
        and the row number over the source)."""
        cfg, columns = self.cfg, list(frame.columns)
        for role, col in (("text", cfg.text_column), ("domain", cfg.domain_column), ("id", cfg.id_column)):
            if col is not None and col not in frame.columns:
                raise SourceError(
                    f"{where}: no {role} column {col!r}; columns are {columns} (set domain.{role}_column)"
                )
        text = frame[cfg.text_column]
        if (pd.api.types.is_numeric_dtype(text) or pd.api.types.is_bool_dtype(text)) and text.notna().any():
            raise SourceError(
                f"{where}: text column {cfg.text_column!r} holds numbers ({text.dtype}), not texts; "
                f"set domain.text_column to the column with the texts (columns are {columns})"
            )
        # a JSON value or a parquet list that is no string was dropped as if empty, and counted so
        bad = next((i for i, t in enumerate(text) if not isinstance(t, str) and not _missing(t)), None)
        if bad is not None:
            value = text.iloc[bad]
            place = row_name(bad) if row_name else f"{where} row {first_id + bad}"
            raise SourceError(
                f"{place}: the text column {cfg.text_column!r} holds {str(value)[:40]} "
                f"({type(value).__name__}), not text; write it as a string or remove it"
            )
        n = len(frame)
        domains = frame[cfg.domain_column].astype(str).tolist() if cfg.domain_column else [cfg.domain] * n
        ids = (
            frame[cfg.id_column].astype(str).tolist()
            if cfg.id_column
            else [str(i) for i in range(first_id, first_id + n)]
        )
        return TextChunk(ids, text.tolist(), domains)

    def _columns_description(self) -> dict:
        keys = ("text_column", "domain_column", "domain", "limit", "seed")
        return {k: getattr(self.cfg, k) for k in keys}


def _missing(value: object) -> bool:
    """A missing text (JSON null, an empty csv cell, pandas' NA): skipped like an empty one."""
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _line_of(path: Path, record: int) -> int:
    """The line number of a jsonl file's record `record` (0-based): pandas skips blank lines."""
    with open(path, encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                if record == 0:
                    return number
                record -= 1
    return number


def _opened_on_first_next(reader, *args) -> Iterator:
    """reader(*args)'s frames, the reader made on the first next(): pandas' csv reader reads the
    header when made, and the caller names an unparseable file only for what next() raises (a
    header not in UTF-8 was a UnicodeDecodeError traceback)."""
    yield from reader(*args)


class TextFiles(_Table):
    """csv / tsv / jsonl / parquet files: `path` is a file, a folder of them, or a glob."""

    config_class = FilesConfig

    def files(self) -> list[Path]:
        p = Path(self.where()).expanduser()
        found = sorted(p.iterdir()) if p.is_dir() else [Path(f) for f in sorted(glob.glob(str(p)))]
        found = [f for f in found if f.suffix.lower() in _READERS]
        if not found:
            raise SourceError(f"domain.path={self.cfg.path}: no such csv/tsv/jsonl/parquet file")
        return found

    def where(self) -> str:
        return str(self.cfg.path)

    def description(self) -> dict:
        return {"source": "files", "files": [str(f.resolve()) for f in self.files()], **self._columns_description()}

    def raw_chunks(self, chunk_rows: int) -> Iterator[TextChunk]:
        row = 0  # ids without an id column: the row number over all files, in file order
        for f in self.files():
            frames = _opened_on_first_next(_READERS[f.suffix.lower()], f, chunk_rows, self.columns())
            in_file = 0
            while True:
                try:
                    frame = next(frames)
                except StopIteration:
                    break
                except Exception as err:  # pandas and pyarrow raise many types; all mean "not parseable"
                    fix = "save it as UTF-8" if isinstance(err, UnicodeDecodeError) else "fix or replace the file"
                    raise SourceError(
                        f"{f} cannot be parsed as {f.suffix[1:]}: {str(err).splitlines()[0]}; {fix}"
                    ) from err
                yield self.chunk_of(frame, self.where(), row, partial(_row_name, f, in_file))
                row += len(frame)
                in_file += len(frame)


def _row_name(path: Path, first: int, i: int) -> str:
    """Row `first + i` of a file, as its user finds it: a json(l) file's line, a table's row."""
    if path.suffix.lower() in (".jsonl", ".json"):
        return f"{path} line {_line_of(path, first + i)}"
    return f"{path} row {first + i + 1}"


class HFDataset(_Table):
    """A Hugging Face dataset: hub id `name` (streamed: needs the network, stores nothing but the
    rows in use) or a `save_to_disk` folder `path` (memory-mapped)."""

    config_class = HFConfig

    def where(self) -> str:
        return str(self.cfg.path or self.cfg.name)

    def description(self) -> dict:
        cfg = self.cfg
        return {
            "source": "hf",
            "name": cfg.name,
            "path": cfg.path,
            "subset": cfg.subset,
            "split": cfg.split,
            **self._columns_description(),
        }

    def _dataset(self):
        import datasets  # heavy import, only when this source is used

        cfg = self.cfg
        try:
            if cfg.path:
                ds = datasets.load_from_disk(str(Path(cfg.path).expanduser()))
            else:
                ds = datasets.load_dataset(cfg.name, cfg.subset, split=cfg.split, streaming=True)
        except Exception as err:
            raise SourceError(f"dataset {self.where()} cannot be loaded: {str(err).splitlines()[0]}") from err
        if isinstance(ds, (datasets.DatasetDict, datasets.IterableDatasetDict)):
            if cfg.split not in ds:
                raise SourceError(f"dataset {self.where()} has no split {cfg.split!r}; splits are {list(ds)}")
            ds = ds[cfg.split]
        names = ds.column_names  # None for a streamed dataset whose features are not declared
        missing = [c for c in self.columns() if names is not None and c not in names]
        if missing:
            raise SourceError(
                f"{self.where()}: no column {missing[0]!r}; columns are {names} "
                "(set domain.text_column / domain.domain_column)"
            )
        return ds.select_columns(self.columns()) if names is not None else ds

    def raw_chunks(self, chunk_rows: int) -> Iterator[TextChunk]:
        row = 0
        for batch in self._dataset().iter(batch_size=chunk_rows):
            frame = pd.DataFrame(batch)
            yield self.chunk_of(frame, self.where(), row)
            row += len(frame)
