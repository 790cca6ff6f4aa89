"""The train texts' n-gram counts (candidates.TrainCounts), cached with the embedding store.

They depend only on the store, the train rows and the analyzer settings, so relabelling a run or
labelling another SAE trained on the same split reads them back (~0.2 s) instead of tokenising
every train text again (~2 s for the 29k wiki sentences). Layout:

    <store>/keybert/counts/<sha of analyzer settings + train rows>/counts.npz, words.parquet, rows.npy

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

from ..errors import UserError
from ..run_dir import atomic_folder
from .candidates import TrainCounts, analyzer_params, count_train_texts
from .labeling_config import LabelingConfig

log = logging.getLogger(__name__)


def counts_folder(store_path: Path, train_rows: np.ndarray, cfg: LabelingConfig) -> Path:
    h = hashlib.sha256(json.dumps(analyzer_params(cfg), sort_keys=True, default=list).encode())
    h.update(np.ascontiguousarray(np.sort(np.asarray(train_rows, dtype=np.int64))).tobytes())
    return Path(store_path) / "keybert" / "counts" / h.hexdigest()[:16]


def _read(folder: Path) -> TrainCounts | None:
    try:
        return TrainCounts(words=pd.read_parquet(folder / "words.parquet")["word"].to_numpy(dtype=object),
                           counts=sp.load_npz(folder / "counts.npz").tocsr(), rows=np.load(folder / "rows.npy"))
    except (OSError, ValueError, KeyError):
        return None


def _write(folder: Path, counts: TrainCounts) -> None:
    def fill(tmp: Path) -> None:
        sp.save_npz(tmp / "counts.npz", counts.counts, compressed=False)
        pd.DataFrame({"word": counts.words}).to_parquet(tmp / "words.parquet", index=False)
        np.save(tmp / "rows.npy", counts.rows)

    try:
        atomic_folder(folder, fill)
    except (OSError, UserError) as err:  # a cache: a read-only or full disk costs speed, not the run
        log.debug("train counts not cached in %s (%s)", folder, err)


def cached_train_counts(store, texts: np.ndarray, train_rows: np.ndarray, cfg: LabelingConfig) -> TrainCounts | None:
    folder = counts_folder(store.path, train_rows, cfg)
    found = _read(folder)
    if found is not None:
        return found
    counts = count_train_texts(texts, train_rows, cfg)
    if counts is not None:
        _write(folder, counts)
    return counts
