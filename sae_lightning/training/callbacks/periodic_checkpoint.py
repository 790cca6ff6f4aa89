"""last.ckpt rewritten in the middle of an epoch, by training time unless a step count is given.

A checkpoint of the default SAE (weights and Adam's moments, 28 MB, written and fsynced) costs
0.1-0.8 s depending on the load; every 50 steps that was 11 of a default run's 31 checkpoint
writes, most of them a few steps before the epoch's own checkpoint (benchmarks/bench_overhead.py).
A time bound says what a kill may lose whatever the speed: at most `every_n_seconds` of training."""

from __future__ import annotations

from datetime import timedelta

from .epoch_checkpoint import KeyedCheckpoint, last_ckpt_written_now


class PeriodicCheckpoint(KeyedCheckpoint):
    """ModelCheckpoint saving after every `every_n_seconds` of training (Lightning's
    train_time_interval), or every `every_n_train_steps` optimiser steps when that is set (the
    step count wins: Lightning takes one of the two). Resuming from either is exact."""

    def __init__(self, every_n_seconds: float | None = None, every_n_train_steps: int | None = None, **kwargs) -> None:
        interval = timedelta(seconds=every_n_seconds) if every_n_seconds and not every_n_train_steps else None
        if interval is None and not every_n_train_steps:
            kwargs["every_n_epochs"] = 0  # both off: no save at all (Lightning would save each epoch)
        super().__init__(every_n_train_steps=every_n_train_steps, train_time_interval=interval, **kwargs)

    def on_train_end(self, trainer, pl_module) -> None:
        # Lightning writes last.ckpt at the end of training when this callback never saved (a fit
        # shorter than every_n_seconds: a default run on quiet cores), though the epoch checkpoint
        # has just made it at this very step: a second serialisation of the same state (28 MB,
        # fsynced). Only when nothing wrote this step does it save.
        if last_ckpt_written_now(trainer, self.dirpath):
            return
        super().on_train_end(trainer, pl_module)
