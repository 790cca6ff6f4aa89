"""RunExport: the moment training ends, on rank zero, write what a finished training leaves behind.

    <run dir>/sae/            cfg.json, sae_weights.safetensors, sparsity.safetensors (SAELens layout)
    <run dir>/metrics.json    {"metrics": final validation metrics, dead/dense fractions, epochs;
                               "timings_s": {"fit": seconds}; "units"} (run_schema.metrics_file)

Before any labelling, so no later stage (or its failure, or a kill) can take the weights. Done in a
callback rather than after `trainer.fit` returns, because under ddp_spawn the weights live in the
worker processes. The folder is written whole or not at all (run_dir.atomic_folder)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytorch_lightning as pl

from ...atomic import atomic_folder
from ...run_dir import RunDir
from .dead_features import dead_summary, log10_density


def final_metrics(trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict:
    out = dict(pl_module.val_metrics)  # checkpointed with the module, so a resume at the very end has them
    out.update(dead_summary(pl_module))
    out.update(epochs=trainer.current_epoch, global_step=trainer.global_step)
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}


class RunExport(pl.Callback):
    """After fit, `metrics` holds what it wrote into metrics.json (what `pipeline.train` returns)."""

    def __init__(self, output_dir: str | Path) -> None:
        self.run = RunDir(output_dir)
        self.metrics: dict | None = None
        self._fit_started = time.perf_counter()

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fit_started = time.perf_counter()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.interrupted:
            return
        if pl_module.val_metrics_step != trainer.global_step:  # resumed at the end: validated before the last step
            pl_module.validate_now()
        if not trainer.is_global_zero:
            return
        sae = pl_module.sae

        def write(folder: Path) -> None:
            sae.save(folder)
            sae.save_sparsity(folder, log10_density(pl_module))

        atomic_folder(self.run.sae, write)
        self.metrics = final_metrics(trainer, pl_module)
        timings = {"fit": time.perf_counter() - self._fit_started}
        self.run.write_metrics(self.metrics, timings)  # last: its presence means "exported"
