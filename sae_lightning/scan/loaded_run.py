"""A finished run opened once for the stages after training: its run.json checked, its store,
SAE and split loaded (what `label_run_dir` and a stand-alone `build_families` start from).

run.json (written by the pipeline, read through RunDir) holds:

    store_path, val_fraction, seed     the store and the split (data.split_indices)
    has_texts                          false for domain=npy without metadata: nothing to label
    families                           the families settings, or null when none are built
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.split import split_indices
from ..data.store import EmbeddingStore
from ..errors import UserError
from ..models import SparseAutoencoder
from ..run_dir import RunDir
from .run_info import read_run_info

@dataclass
class LoadedRun:
    info: dict  # run.json
    store: EmbeddingStore
    sae: SparseAutoencoder
    train_idx: np.ndarray
    val_idx: np.ndarray


def load_run(run_dir: str | Path, device: str | None = None) -> LoadedRun:
    """The run's store, SAE (on `device`, default cpu) and split, checked against each other."""
    run_dir = Path(run_dir)
    info = read_run_info(run_dir)
    store = EmbeddingStore(Path(info["store_path"]).expanduser())
    sae = SparseAutoencoder.load(RunDir(run_dir).sae, device=device or "cpu")
    if sae.cfg.d_in != store.dim:
        raise UserError(f"{run_dir}: the SAE reads d_in={sae.cfg.d_in} but the store {store.path} holds "
                         f"{store.dim}-dimensional embeddings; run.json points at the wrong store")
    train_idx, val_idx = split_indices(len(store), float(info["val_fraction"]), int(info["seed"]))
    return LoadedRun(info, store, sae, train_idx, val_idx)
