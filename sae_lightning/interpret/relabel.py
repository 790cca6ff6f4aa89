"""Label a finished run (again, or for the first time): what `sae-label` and the end of `sae-train` call.

The stages after export (labels, then families when run.json asks for them) are all here, so
`sae-label run_dir=<run>` finishes a run whose labelling was interrupted, failed or never ran,
with the same result. The run is opened once (loaded_run.py: run.json, store, SAE, split) and
scanned once (scan.py); labelling, scoring and families read that scan and what the labelling
made, so no stage reloads the SAE, re-derives the split, streams the store again or re-reads
labels from disk.

Relabelling writes <run dir>/features.parquet (and families.parquet) and merges the label summary
into metrics.json, keeping the training metrics that are there.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import UserError
from ..run_dir import RunDir
from .families import families_from_scan, feature_labels, write_families
from .feature_table import label_features, write_features
from .labeling_config import LabelingConfig
from .loaded_run import RUN_KEYS, load_run, read_run_info
from .phase_timer import PhaseTimer
from .scan import scan_store

__all__ = ["RUN_KEYS", "NoTexts", "label_run_dir", "merge_metrics", "read_run_info"]


class NoTexts(UserError):
    """The run's store holds embeddings without texts: there is nothing to name features with."""


def merge_metrics(run_dir: str | Path, summary: dict) -> Path:
    """metrics.json <- its training metrics updated with the label summary (atomic write)."""
    run = RunDir(run_dir)
    return run.merge_metrics(summary) if run.metrics_file.is_file() else run.write_metrics(summary)


def label_run_dir(run_dir: str | Path, cfg: LabelingConfig | None = None) -> tuple[pd.DataFrame, dict]:
    cfg = cfg or LabelingConfig()
    run_dir = Path(run_dir)
    info = read_run_info(run_dir)
    if not info.get("has_texts", True):
        raise NoTexts(f"{run_dir} was trained on embeddings without texts (domain=npy without domain.metadata): "
                      "there is nothing to label; its SAE and metrics are complete")
    run = load_run(run_dir, cfg.device)
    families = info.get("families") or None
    timer = PhaseTimer()
    with timer("scan"):  # one pass: what labels, scores and families need (scan.py)
        m = max(cfg.m, int(families.get("texts_per_member", 5))) if families else cfg.m
        scan = scan_store(run.sae, run.store, run.train_idx, run.val_idx, m, cfg.batch_size, cfg.device,
                          min_cooccur=int(families.get("min_cooccur", 2)) if families else None)
    labelling = label_features(run.sae, run.store, run.train_idx, run.val_idx, cfg, scan)
    df, summary = labelling.features, labelling.summary
    summary["time_scan"] = timer.summary()["time_scan"]
    summary["time_total"] = round(summary["time_total"] + summary["time_scan"], 3)
    write_features(df, run_dir)  # before the families: a failure there cannot take the labels
    merge_metrics(run_dir, summary)
    if families:
        with timer("families"):
            settings = {k: v for k, v in families.items() if k not in ("batch_size", "device")}
            table = families_from_scan(scan, run.store, run.sae, feature_labels(df, run.sae.cfg.d_sae),
                                       labelling.counts, cfg, **settings)
            write_families(table, run_dir)
        summary["time_families"] = timer.summary()["time_families"]
        merge_metrics(run_dir, {"time_families": summary["time_families"]})
    return df, summary
