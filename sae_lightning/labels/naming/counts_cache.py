"""The n-gram counts of the features' top texts with their words' document frequency over the
train split (candidates.TrainCounts), cached with the embedding store.

They depend only on the store, the train rows, the counted (top) rows and the analyzer settings,
so relabelling a run reads them back (~0.2 s) instead of tokenising every train text again (the
document frequencies need one pass over the split: ~2 s for the 29k wiki sentences). Layout:

    <store>/keybert/counts/<sha of analyzer settings + train rows + counted rows>/
        counts.npz, words.parquet, rows.npy, df.npy (absent when every train text is counted)

The folder is written under a temporary name and renamed into place, so it is whole or absent.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ...atomic import atomic_folder
from ...errors import UserError
from ...schemas.labeling import LabelingConfig
from .candidates import TrainCounts, analyzer_settings, count_train_texts

log = logging.getLogger(__name__)


def counts_folder(
    store_path: Path, train_rows: np.ndarray, cfg: LabelingConfig, rows: np.ndarray | None = None
) -> Path:
    h = hashlib.sha256(json.dumps(analyzer_settings(cfg), sort_keys=True, default=list).encode())
    h.update(np.ascontiguousarray(np.sort(np.asarray(train_rows, dtype=np.int64))).tobytes())
    if rows is not None:
        h.update(b"rows")
        h.update(np.ascontiguousarray(np.unique(np.asarray(rows, dtype=np.int64))).tobytes())
    return Path(store_path) / "keybert" / "counts" / h.hexdigest()[:16]


def _read(folder: Path, n_train: int) -> TrainCounts | None:
    try:
        df = np.load(folder / "df.npy") if (folder / "df.npy").is_file() else None
        return TrainCounts(
            words=pd.read_parquet(folder / "words.parquet")["word"].to_numpy(dtype=object),
            counts=sp.load_npz(folder / "counts.npz").tocsr(),
            rows=np.load(folder / "rows.npy"),
            df=df,
            n_docs=n_train if df is not None else None,
        )
    except (OSError, ValueError, KeyError):
        return None


def _write(folder: Path, counts: TrainCounts) -> None:
    def fill(tmp: Path) -> None:
        sp.save_npz(tmp / "counts.npz", counts.counts, compressed=False)
        pd.DataFrame({"word": counts.words}).to_parquet(tmp / "words.parquet", index=False)
        np.save(tmp / "rows.npy", counts.rows)
        if counts.df is not None:
            np.save(tmp / "df.npy", counts.df)

    try:
        atomic_folder(folder, fill)
    except (OSError, UserError) as err:  # a cache: a read-only or full disk costs speed, not the run
        log.debug("train counts not cached in %s (%s)", folder, err)


def cached_train_counts(
    store, texts: np.ndarray, train_rows: np.ndarray, cfg: LabelingConfig, rows: np.ndarray | None = None
) -> TrainCounts | None:
    """count_train_texts(texts, train_rows, cfg, rows), read back when this store has it."""
    folder = counts_folder(store.path, train_rows, cfg, rows)
    found = _read(folder, len(np.unique(train_rows)))
    if found is not None:
        return found
    counts = count_train_texts(texts, train_rows, cfg, rows)
    if counts is not None:
        _write(folder, counts)
    return counts
