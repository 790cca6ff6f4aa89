"""Test-side pieces that are real code paths, used through the config like any callback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning as pl

from sae_lightning.labeling import Labeling
from sae_lightning.models import sparse_dictionary_data
from sae_lightning.run_dir import RunDir
from sae_lightning.run_schema import TRAIN_UNITS


def write_labelled_run(
    run: Path, features: pd.DataFrame, families: pd.DataFrame | None = None, results: dict | None = None
) -> Labeling:
    """Hand-made tables written as the pipeline lays out a run: `results` (one flat dict, as
    RunDir.results() reads it back) split into metrics.json's training metrics and the labelling's
    labels.json summary, the tables in a new labelling made current. The tables are written as
    given (a test's subset of the columns too)."""
    folder = RunDir(run)
    if results is not None:
        folder.write_metrics({k: v for k, v in results.items() if k in TRAIN_UNITS})
    with folder.new_labeling() as labeling:
        features.to_parquet(labeling.features)
        if families is not None:
            families.to_parquet(labeling.families)
        labeling.write_labels({}, None, {k: v for k, v in (results or {}).items() if k not in TRAIN_UNITS})
    return folder.labeling()


def synthetic_npy(folder: Path, n_dirs: int, seed: int) -> Path:
    """Precomputed embeddings with no texts and no model (`domain=npy`): 2,000 rows of 16-d data
    drawn from a sparse dictionary of `n_dirs` directions, saved as <folder>/emb.npy."""
    x, _ = sparse_dictionary_data(n=2000, d_in=16, n_dirs=n_dirs, active=3, seed=seed)
    path = folder / "emb.npy"
    np.save(path, x.numpy())
    return path


class StopAfterEpoch(pl.Callback):
    """Stops training cleanly after `epoch` epochs: an interruption at an epoch boundary, which
    leaves the same last.ckpt a killed run would have written at that boundary."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch + 1 >= self.epoch:
            trainer.should_stop = True


class SignalAtStep(pl.Callback):
    """Sends this process a real signal (SIGINT = Ctrl-C, SIGTERM) after optimiser step `step`,
    in the middle of an epoch: what a user or a scheduler does to a running `sae-train`."""

    def __init__(self, step: int, signum: int = 2) -> None:
        self.step, self.signum, self.sent = step, signum, False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        import os

        if trainer.global_step >= self.step and not self.sent:
            self.sent = True
            os.kill(os.getpid(), self.signum)
