"""Test-side pieces that are real code paths, used through the config like any callback."""
from __future__ import annotations

import pytorch_lightning as pl


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
