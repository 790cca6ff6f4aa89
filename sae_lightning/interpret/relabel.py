"""Label a finished run again (other labelling settings, no retraining): what `sae-label` calls.

A finished run dir holds (the training side writes them):

    sae/cfg.json, sae/sae_weights.safetensors   the SAE, SAELens layout (SparseAutoencoder.save)
    run.json                                    where the data was and how it was split:
        {"store_path": "<embedding store folder>",   # EmbeddingStore(store_path)
         "val_fraction": 0.1,                        # data.split_indices(len(store), val_fraction, seed)
         "seed": 0,
         ...}                                        # other keys are kept and ignored here
    metrics.json                                    training metrics (optional here; merged into)

Relabelling writes <run dir>/features.parquet and merges the label summary into metrics.json,
keeping the training metrics that are there.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd

from ..data import split_indices
from ..errors import UserError
from ..models import SparseAutoencoder
from ..models.base import CFG_FILE, WEIGHTS_FILE
from ..store import EmbeddingStore
from .feature_table import interpret_sae, write_features
from .labeling_config import LabelingConfig

RUN_FILE = "run.json"
RUN_KEYS = ("store_path", "val_fraction", "seed")


def read_run_info(run_dir: str | Path) -> dict:
    """run.json, checked; ValueError naming everything that makes `run_dir` not a finished run."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is not a run dir: the folder does not exist")
    missing = [f"sae/{name}" for name in (CFG_FILE, WEIGHTS_FILE) if not (run_dir / "sae" / name).is_file()]
    info: dict = {}
    if not (run_dir / RUN_FILE).is_file():
        missing.append(RUN_FILE)
    else:
        try:
            info = json.loads((run_dir / RUN_FILE).read_text())
        except json.JSONDecodeError as err:
            raise UserError(f"{run_dir / RUN_FILE} is not valid JSON ({err})") from None
        if not isinstance(info, dict):
            raise UserError(f"{run_dir / RUN_FILE} must hold a JSON object")
        missing += [f"{RUN_FILE}:{key}" for key in RUN_KEYS if key not in info]
    if missing:
        raise UserError(f"{run_dir} is not a finished run: missing {', '.join(missing)} "
                         "(a run dir needs sae/cfg.json, sae/sae_weights.safetensors and run.json "
                         "with store_path, val_fraction and seed)")
    return info


def merge_metrics(run_dir: str | Path, summary: dict) -> Path:
    """metrics.json <- its training metrics updated with the label summary (atomic write)."""
    path = Path(run_dir) / "metrics.json"
    metrics = {}
    if path.is_file():
        try:
            metrics = json.loads(path.read_text())
        except json.JSONDecodeError:
            metrics = {}  # a broken file: the labels still get written; training metrics are lost anyway
    metrics.update({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in summary.items()})
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True))
    os.replace(tmp, path)
    return path


def label_run_dir(run_dir: str | Path, cfg: LabelingConfig | None = None) -> tuple[pd.DataFrame, dict]:
    cfg = cfg or LabelingConfig()
    run_dir = Path(run_dir)
    info = read_run_info(run_dir)
    store = EmbeddingStore(Path(info["store_path"]).expanduser())
    sae = SparseAutoencoder.load(run_dir / "sae", device=cfg.device or "cpu")
    if sae.cfg.d_in != store.dim:
        raise UserError(f"{run_dir}: the SAE reads d_in={sae.cfg.d_in} but the store {store.path} holds "
                         f"{store.dim}-dimensional embeddings; run.json points at the wrong store")
    train_idx, val_idx = split_indices(len(store), float(info["val_fraction"]), int(info["seed"]))
    df, summary = interpret_sae(sae, store, train_idx, val_idx, cfg)
    write_features(df, run_dir)
    merge_metrics(run_dir, summary)
    return df, summary
