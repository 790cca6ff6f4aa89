"""StopOnSignal: turn a remembered Ctrl-C / SIGTERM (interrupts.DeferredSignals) into a checkpoint
at the next batch or epoch end, then stop the run with RunInterrupted.

Batch end and epoch end are the points Lightning's own periodic checkpoints use, so the loop's
state in last.ckpt resumes exactly (the data loader's position is the DataModule's state)."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl

from ..interrupts import DeferredSignals, RunInterrupted


class StopOnSignal(pl.Callback):
    def __init__(self, signals: DeferredSignals, last_ckpt: str | Path) -> None:
        self.signals, self.last_ckpt = signals, str(last_ckpt)

    def _stop_if_signalled(self, trainer: pl.Trainer) -> None:
        if self.signals.received is None:
            return
        trainer.save_checkpoint(self.last_ckpt)
        signum, self.signals.received = self.signals.received, None
        raise RunInterrupted(signum)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._stop_if_signalled(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stop_if_signalled(trainer)
