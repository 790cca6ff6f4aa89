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

from ..data import split_indices
from ..errors import UserError
from ..models import SparseAutoencoder
from ..run_dir import RunDir
from ..store import EmbeddingStore

RUN_KEYS = ("store_path", "val_fraction", "seed")


def read_run_info(run_dir: str | Path) -> dict:
    """run.json, checked; one line naming what makes `run_dir` not a finished run, and the way out."""
    run = RunDir(run_dir)
    if not run.root.is_dir():
        raise UserError(f"{run.root} is not a run dir: the folder does not exist")
    if not run.has_export() and run.last_ckpt.is_file():
        raise UserError(f"{run.root} has not finished training (no sae/ or metrics.json, but a checkpoint): "
                        f"`sae-train run_dir={run.root} ckpt_path=last` recovers it")
    missing = [f"sae/{name}" for name in ("cfg.json", "sae_weights.safetensors") if not (run.sae / name).is_file()]
    info: dict = {}
    if not (run / RunDir.RUN).is_file():
        missing.append(RunDir.RUN)
    else:
        info = run.run_info()
        missing += [f"{RunDir.RUN}:{key}" for key in RUN_KEYS if key not in info]
    if missing:
        raise UserError(f"{run.root} is not a finished run: missing {', '.join(missing)} "
                        "(a run dir needs sae/cfg.json, sae/sae_weights.safetensors and run.json "
                        "with store_path, val_fraction and seed)")
    return info


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
    sae = SparseAutoencoder.load(run_dir / "sae", device=device or "cpu")
    if sae.cfg.d_in != store.dim:
        raise UserError(f"{run_dir}: the SAE reads d_in={sae.cfg.d_in} but the store {store.path} holds "
                         f"{store.dim}-dimensional embeddings; run.json points at the wrong store")
    train_idx, val_idx = split_indices(len(store), float(info["val_fraction"]), int(info["seed"]))
    return LoadedRun(info, store, sae, train_idx, val_idx)
