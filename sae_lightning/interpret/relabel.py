"""Label a finished run (again, or for the first time): what `sae-label` and the end of `sae-train` call.

The stages after export (labels, then families when run.json asks for them) are all here, so
`sae-label run_dir=<run>` finishes a run whose labelling was interrupted, failed or never ran,
with the same result. run.json (written by the pipeline, read through RunDir) holds:

    store_path, val_fraction, seed     the store and the split (data.split_indices)
    has_texts                          false for domain=npy without metadata: nothing to label
    families                           the families settings, or null when none are built

Each labelling is a new folder `<run>/labelings/<id>/` (features, families named with its labels,
labels.json with its settings and summary; RunDir.new_labeling / commit), which becomes the run's
current one only once it is whole: earlier labellings and metrics.json are never rewritten.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..data import split_indices
from ..errors import UserError
from ..models import SparseAutoencoder
from ..run_dir import RunDir
from ..store import EmbeddingStore
from .feature_table import interpret_sae, write_features
from .families import build_families
from .labeling_config import LabelingConfig
from .run_info import read_run_info

class NoTexts(UserError):
    """The run's store holds embeddings without texts: there is nothing to name features with."""




def label_run_dir(run_dir: str | Path, cfg: LabelingConfig | None = None) -> tuple[pd.DataFrame, dict]:
    """A new labelling of the run, made current when it is whole; returns its table and summary."""
    cfg = cfg or LabelingConfig()
    run_dir = Path(run_dir)
    run = RunDir(run_dir)
    info = read_run_info(run_dir)
    if not info.get("has_texts", True):
        raise NoTexts(f"{run_dir} was trained on embeddings without texts (domain=npy without domain.metadata): "
                      "there is nothing to label; its SAE and metrics are complete")
    store = EmbeddingStore(Path(info["store_path"]).expanduser())
    sae = SparseAutoencoder.load(run.sae, device=cfg.device or "cpu")
    if sae.cfg.d_in != store.dim:
        raise UserError(f"{run_dir}: the SAE reads d_in={sae.cfg.d_in} but the store {store.path} holds "
                         f"{store.dim}-dimensional embeddings; run.json points at the wrong store")
    train_idx, val_idx = split_indices(len(store), float(info["val_fraction"]), int(info["seed"]))
    df, summary = interpret_sae(sae, store, train_idx, val_idx, cfg)
    with run.new_labeling() as labeling:  # a failure or Ctrl-C removes it; the earlier one stays current
        write_features(df, labeling)
        if info.get("families"):
            build_families(run_dir, labeling=cfg, into=labeling, **info["families"])
        labeling.write_labels(cfg.to_dict(), info.get("families"), summary)
    return df, summary
