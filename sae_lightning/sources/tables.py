"""Tabular text sources: any Hugging Face `datasets` source (hub id or `save_to_disk` folder) and
local csv / jsonl / parquet files. Both pick a text column and a domain column (or a fixed domain)."""
from __future__ import annotations

import glob
from pathlib import Path

import pandas as pd

from .corpus import SourceError, TextCorpus, check_limit, drop_empty, sample_per_domain

_READERS = {
    ".csv": pd.read_csv,
    ".tsv": lambda p: pd.read_csv(p, sep="\t"),
    ".jsonl": lambda p: pd.read_json(p, lines=True),
    ".json": lambda p: pd.read_json(p, lines=True),
    ".parquet": pd.read_parquet,
}


def corpus_from_frame(frame: pd.DataFrame, where: str, text_column: str, domain_column: str | None,
                      domain: str | None, id_column: str | None, limit: int | None, seed: int) -> TextCorpus:
    columns = list(frame.columns)
    for role, col in (("text", text_column), ("domain", domain_column), ("id", id_column)):
        if col is not None and col not in frame.columns:
            raise SourceError(f"{where}: no {role} column {col!r}; columns are {columns} (set domain.{role}_column)")
    if pd.api.types.is_numeric_dtype(frame[text_column]) or pd.api.types.is_bool_dtype(frame[text_column]):
        raise SourceError(f"{where}: text column {text_column!r} holds numbers ({frame[text_column].dtype}), not texts; "
                          f"set domain.text_column to the column with the texts (columns are {columns})")
    texts = frame[text_column].tolist()
    domains = frame[domain_column].astype(str).tolist() if domain_column else [domain or "default"] * len(frame)
    ids = frame[id_column].astype(str).tolist() if id_column else [str(i) for i in range(len(frame))]
    return sample_per_domain(drop_empty(ids, texts, domains, where), limit, seed)


class TextFiles:
    """csv / tsv / jsonl / parquet files: `path` is a file, a folder of them, or a glob."""

    def __init__(self, path: str, text_column: str = "text", domain_column: str | None = None,
                 domain: str | None = None, id_column: str | None = None, limit: int | None = None,
                 seed: int = 0, **_: object) -> None:
        check_limit(limit)
        self.path, self.text_column, self.domain_column = str(path), text_column, domain_column
        self.domain, self.id_column, self.limit, self.seed = domain, id_column, limit, seed

    def files(self) -> list[Path]:
        p = Path(self.path).expanduser()
        found = sorted(p.iterdir()) if p.is_dir() else [Path(f) for f in sorted(glob.glob(str(p)))]
        found = [f for f in found if f.suffix.lower() in _READERS]
        if not found:
            raise SourceError(f"domain.path={self.path}: no such csv/tsv/jsonl/parquet file")
        return found

    def load(self) -> TextCorpus:
        frames = []
        for f in self.files():
            try:
                frames.append(_READERS[f.suffix.lower()](f))
            except Exception as err:  # pandas raises many types; all mean "not parseable"
                raise SourceError(f"{f} cannot be parsed as {f.suffix[1:]}: {str(err).splitlines()[0]}") from err
        frame = pd.concat(frames, ignore_index=True)
        corpus = corpus_from_frame(frame, self.path, self.text_column, self.domain_column, self.domain,
                                   self.id_column, self.limit, self.seed)
        corpus.description = {"source": "files", "files": [str(f.resolve()) for f in self.files()],
                              "text_column": self.text_column, "domain_column": self.domain_column,
                              "domain": self.domain, "limit": self.limit, "seed": self.seed}
        return corpus


class HFDataset:
    """A Hugging Face dataset: hub id `name` (needs the network) or a `save_to_disk` folder `path`."""

    def __init__(self, name: str | None = None, path: str | None = None, subset: str | None = None,
                 split: str = "train", text_column: str = "text", domain_column: str | None = None,
                 domain: str | None = None, id_column: str | None = None, limit: int | None = None,
                 seed: int = 0, **_: object) -> None:
        check_limit(limit)
        if not (name or path):
            raise SourceError("domain=hf needs domain.name (a hub id) or domain.path (a save_to_disk folder)")
        self.name, self.path, self.subset, self.split = name, path, subset, split
        self.text_column, self.domain_column, self.domain = text_column, domain_column, domain
        self.id_column, self.limit, self.seed = id_column, limit, seed

    def load(self) -> TextCorpus:
        import datasets  # heavy import, only when this source is used

        where = self.path or self.name
        try:
            if self.path:
                ds = datasets.load_from_disk(str(Path(self.path).expanduser()))
            else:
                ds = datasets.load_dataset(self.name, self.subset, split=self.split)
        except Exception as err:
            raise SourceError(f"dataset {where} cannot be loaded: {str(err).splitlines()[0]}") from err
        if isinstance(ds, datasets.DatasetDict):
            if self.split not in ds:
                raise SourceError(f"dataset {where} has no split {self.split!r}; splits are {list(ds)}")
            ds = ds[self.split]
        missing = [c for c in (self.text_column, self.domain_column, self.id_column) if c and c not in ds.column_names]
        if missing:
            raise SourceError(f"{where}: no column {missing[0]!r}; columns are {ds.column_names} (set domain.text_column / domain.domain_column)")
        cols = [c for c in (self.text_column, self.domain_column, self.id_column) if c]
        frame = ds.select_columns(cols).to_pandas()
        corpus = corpus_from_frame(frame, where, self.text_column, self.domain_column, self.domain,
                                   self.id_column, self.limit, self.seed)
        corpus.description = {"source": "hf", "name": self.name, "path": self.path, "subset": self.subset,
                              "split": self.split, "text_column": self.text_column,
                              "domain_column": self.domain_column, "domain": self.domain,
                              "limit": self.limit, "seed": self.seed}
        return corpus
