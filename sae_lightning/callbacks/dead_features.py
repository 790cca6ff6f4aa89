"""DeadFeatureStats: per latent, the training samples since it last fired.

Dead = did not fire on the last N samples (counted in samples, not steps, so the verdict does
not change with the batch size). The counters are part of the checkpoint, so a resumed run keeps
counting where it stopped, and they feed AuxK through `pl_module.dead_mask`."""
from __future__ import annotations

import logging

import pytorch_lightning as pl
import torch
from torch import Tensor

log = logging.getLogger(__name__)


class DeadFeatureStats(pl.Callback):
    def __init__(self, dead_after_samples: int = 10_000, dense_threshold: float = 0.1) -> None:
        if dead_after_samples <= 0:
            raise ValueError(f"dead_after_samples={dead_after_samples} must be positive")
        self.dead_after_samples, self.dense_threshold = int(dead_after_samples), dense_threshold
        self.samples_since_fired: Tensor | None = None
        # Firing counts over the current epoch: density = fired / seen.
        self.epoch_fired: Tensor | None = None
        self.epoch_seen = 0
        self.last_density: Tensor | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        d_sae = pl_module.sae.cfg.d_sae
        if self.samples_since_fired is None:
            self.samples_since_fired = torch.zeros(d_sae, dtype=torch.long)
            self.epoch_fired = torch.zeros(d_sae, dtype=torch.long)
        n_train = len(trainer.datamodule.train_idx) if getattr(trainer.datamodule, "train_idx", None) is not None else None
        if n_train and self.dead_after_samples > n_train:
            log.warning("dead_after_samples=%d exceeds the %d training samples; counting over one epoch instead",
                        self.dead_after_samples, n_train)
            self.dead_after_samples = n_train

    def dead_mask(self) -> Tensor:
        return self.samples_since_fired >= self.dead_after_samples

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._move(pl_module.device)
        pl_module.dead_mask = self.dead_mask()

    def _move(self, device: torch.device) -> None:
        self.samples_since_fired = self.samples_since_fired.to(device)
        self.epoch_fired = self.epoch_fired.to(device)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        fired, n = outputs["fire_counts"].long(), int(outputs["n"])
        if trainer.world_size > 1:  # every rank keeps the same counters, hence the same AuxK targets
            fired = trainer.strategy.reduce(fired, reduce_op="sum")
            n *= trainer.world_size
        self.samples_since_fired += n
        self.samples_since_fired[fired > 0] = 0
        self.epoch_fired += fired
        self.epoch_seen += n
        pl_module.dead_mask = self.dead_mask()
        density = self.epoch_fired.float() / max(self.epoch_seen, 1)
        pl_module.log_dict({"train/dead_frac": pl_module.dead_mask.float().mean(),
                            "train/dense_frac": (density > self.dense_threshold).float().mean()},
                           on_step=True, on_epoch=False)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.last_density = self.epoch_fired.float().cpu() / max(self.epoch_seen, 1)
        log10 = self.log10_density()
        live = log10[torch.isfinite(log10)]
        pl_module.log_dict({"train/mean_log10_density": live.mean() if len(live) else torch.tensor(float("nan")),
                            "train/epoch_dead_frac": (self.last_density == 0).float().mean()},
                           on_step=False, on_epoch=True, sync_dist=True)  # counters agree across ranks
        if trainer.is_global_zero:
            self._log_histogram(trainer, log10)
        self.epoch_fired.zero_()
        self.epoch_seen = 0

    def log10_density(self) -> Tensor:
        """log10 of each latent's firing rate over the last full epoch (-inf for never fired)."""
        if self.last_density is None:
            return torch.full_like(self.samples_since_fired, float("-inf"), dtype=torch.float, device="cpu")
        return torch.log10(self.last_density)

    def summary(self) -> dict[str, float]:
        log10 = self.log10_density()
        live = log10[torch.isfinite(log10)]
        density = self.last_density if self.last_density is not None else torch.zeros(len(log10))
        return {"dead_frac": float(self.dead_mask().float().mean()),
                "dense_frac": float((density > self.dense_threshold).float().mean()),
                "mean_log10_density": float(live.mean()) if len(live) else float("nan")}

    def _log_histogram(self, trainer: pl.Trainer, log10: Tensor) -> None:
        from pytorch_lightning.loggers import WandbLogger

        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                import wandb

                finite = log10[torch.isfinite(log10)].numpy()
                logger.experiment.log({"train/log10_feature_density": wandb.Histogram(finite, num_bins=50),
                                       "trainer/global_step": trainer.global_step})

    def state_dict(self) -> dict:
        return {"samples_since_fired": self.samples_since_fired.cpu(), "epoch_fired": self.epoch_fired.cpu(),
                "epoch_seen": self.epoch_seen, "dead_after_samples": self.dead_after_samples,
                "last_density": self.last_density}

    def load_state_dict(self, state: dict) -> None:
        self.samples_since_fired = state["samples_since_fired"]
        self.epoch_fired = state["epoch_fired"]
        self.epoch_seen = state["epoch_seen"]
        self.last_density = state.get("last_density")
