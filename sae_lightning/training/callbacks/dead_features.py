"""DeadFeatureStats: logs the dead and dense latents and the firing-density histogram.

An observer: the counts it reads (samples since each latent last fired, the epoch's firing counts)
are the module's training state (SAEModule.samples_since_fired, .epoch_fired), because AuxK needs
them and they must be checkpointed with the weights. Dead = not fired on the last
`sae.dead_after_samples` samples (counted in samples, so the verdict does not change with the batch size)."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import Tensor

from ...run_schema import DENSE_THRESHOLD


def log10_density(pl_module: pl.LightningModule) -> Tensor:
    """log10 of each latent's firing rate over the last epoch (-inf for never fired)."""
    return torch.log10(pl_module.epoch_density())


def dead_summary(pl_module: pl.LightningModule) -> dict[str, float]:
    log10 = log10_density(pl_module)
    live = log10[torch.isfinite(log10)]
    return {
        "dead_frac": float(pl_module.dead_mask.float().mean()),
        "dense_frac": float((pl_module.epoch_density() > DENSE_THRESHOLD).float().mean()),
        "mean_log10_density": float(live.mean()) if len(live) else float("nan"),
    }


class DeadFeatureStats(pl.Callback):
    """Dense: fires on more than run_schema.DENSE_THRESHOLD of the inputs, the one threshold that
    metrics.json, the training log and the report share (so it is not a knob of this callback)."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if (trainer.global_step % max(1, trainer.log_every_n_steps)) != 0:
            return  # the counters are the module's; logging them every step would cost more than the step
        density = pl_module.epoch_fired.float() / max(int(pl_module.epoch_seen), 1)
        pl_module.log_step(  # into the step's one row for the loggers (SAEModule.log_step)
            {
                "train/dead_frac": pl_module.dead_mask.float().mean(),
                "train/dense_frac": (density > DENSE_THRESHOLD).float().mean(),
            }
        )

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        log10 = log10_density(pl_module)
        live = log10[torch.isfinite(log10)]
        pl_module.log_dict(
            {
                "train/mean_log10_density": live.mean() if len(live) else torch.tensor(float("nan")),
                "train/epoch_dead_frac": (pl_module.epoch_density() == 0).float().mean(),
            },
            on_step=False,
            on_epoch=True,
            sync_dist=True,
        )  # counters agree across ranks
        if trainer.is_global_zero:
            self._log_histogram(trainer, log10)

    def _log_histogram(self, trainer: pl.Trainer, log10: Tensor) -> None:
        from pytorch_lightning.loggers import WandbLogger

        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                import wandb

                finite = log10[torch.isfinite(log10)].numpy()
                logger.experiment.log(
                    {
                        "train/log10_feature_density": wandb.Histogram(finite, num_bins=50),
                        "trainer/global_step": trainer.global_step,
                    }
                )
