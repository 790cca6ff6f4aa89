"""RunExport: at the end of fit, on rank zero, write the run's contract files.

    <run dir>/sae/            cfg.json, sae_weights.safetensors, sparsity.safetensors (SAELens layout)
    <run dir>/metrics.json    final validation metrics, dead/dense fractions, label-quality summary

Done in a callback rather than after `trainer.fit` returns, because under ddp_spawn the weights
and callback state live in the worker processes."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytorch_lightning as pl
import torch

from .dead_features import DeadFeatureStats


def write_json_atomic(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, allow_nan=True))
    os.replace(tmp, path)


def _number(value) -> float | int:
    value = value.item() if isinstance(value, torch.Tensor) else value
    return value if isinstance(value, int) else float(value)


class RunExport(pl.Callback):
    def __init__(self, output_dir: str) -> None:
        self.output_dir = Path(output_dir)

    def metrics(self, trainer: pl.Trainer) -> dict:
        out = {k[len("val/"):]: _number(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        for cb in trainer.callbacks:
            if isinstance(cb, DeadFeatureStats):
                out.update(cb.summary())
            summary = getattr(cb, "last_summary", None)
            if isinstance(summary, dict):
                out.update({k: _number(v) for k, v in summary.items() if isinstance(v, (int, float, torch.Tensor))})
        out.update(epochs=trainer.current_epoch, global_step=trainer.global_step)
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        sae = pl_module.sae
        sae_dir = sae.save(self.output_dir / "sae")
        for cb in trainer.callbacks:
            if isinstance(cb, DeadFeatureStats):
                sae.save_sparsity(sae_dir, cb.log10_density())
        write_json_atomic(self.output_dir / "metrics.json", self.metrics(trainer))
