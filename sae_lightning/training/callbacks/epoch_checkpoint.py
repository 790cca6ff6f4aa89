"""The epoch checkpoint: `epoch=N-step=M.ckpt` written once, last.ckpt made a second name of it,
and only at the epochs where the run's last checkpoint is old enough.

Lightning's ModelCheckpoint with `save_last: true` serialises the same state twice each epoch,
the epoch file and then last.ckpt, each written and fsynced (28 MB for the default SAE; the
larger share of what checkpointing cost a default run, benchmarks/bench_overhead.py). Its
`save_last: link` avoids that with a symlink, but re-points it only after deleting the old epoch
file (a kill between the two leaves `ckpt_path=last` dangling) and, when an epoch writes no
epoch file, points last.ckpt back at an older one over a newer periodic checkpoint. Here
last.ckpt becomes a hard link to the epoch file just written, renamed into place (atomic_link):
its content is that file's, the old epoch file can go without touching it, and an epoch that
wrote no epoch file saves last.ckpt as Lightning does.

A default run's epoch is ~57 steps (1.5-3 s on 2 cores), and each checkpoint ~75 ms on quiet
cores, up to 0.8 s on loaded ones: one per epoch was ~4 % of the fit. What a kill may lose is the
periodic checkpoint's bound (every_n_seconds of training), not the epoch's, so an epoch end writes
only when the run's last checkpoint (any callback's, a signal's) is `min_interval_seconds` old;
the last epoch always writes, so a finished fit ends with its final state in last.ckpt."""

from __future__ import annotations

import time
from functools import cached_property

from pytorch_lightning.callbacks import ModelCheckpoint

from ...atomic import atomic_link


def last_epoch(trainer) -> bool:
    """Whether the epoch now ending is the fit's last (max_epochs, max_steps or a stop request)."""
    epochs, steps = trainer.max_epochs, trainer.max_steps
    return (
        trainer.should_stop
        or (epochs is not None and epochs >= 0 and trainer.current_epoch + 1 >= epochs)
        or (steps is not None and steps >= 0 and trainer.global_step >= steps)
    )


def last_ckpt_written_now(trainer, dirpath) -> bool:
    """Whether a checkpoint callback keeping last.ckpt in `dirpath` wrote at this very step."""
    return any(
        cb.save_last and cb.dirpath == dirpath and cb._last_global_step_saved == trainer.global_step
        for cb in trainer.checkpoint_callbacks
    )


class KeyedCheckpoint(ModelCheckpoint):
    """ModelCheckpoint with its state key computed once: Lightning formats it into a profiler label
    at every hook it calls on the callback (~10 us each, ~2,800 calls in a 228-step fit), though it
    depends only on the arguments the callback was built with."""

    @cached_property
    def state_key(self) -> str:
        return super().state_key


class EpochCheckpoint(KeyedCheckpoint):
    """ModelCheckpoint whose last.ckpt is a hard link to the checkpoint it wrote at the same step.

    The linked file's callback state differs from a fresh save's only in `last_model_path`
    (Lightning sets it to last.ckpt just before saving last.ckpt): after the first epoch it is
    last.ckpt already, and before it "" (no previous last.ckpt to remove), so a run resumed from
    either ends exactly as an uninterrupted one."""

    def __init__(self, min_interval_seconds: float | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.min_interval_seconds = min_interval_seconds
        self._last_write = time.monotonic()  # any checkpoint of this run (on_save_checkpoint), or the train start

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        self._last_write = time.monotonic()  # a resumed run counts from its own start

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self._last_write = time.monotonic()  # every save, whoever asked for it, passes through here

    def _too_soon(self, trainer) -> bool:
        if not self.min_interval_seconds or last_epoch(trainer):
            return False
        soon = time.monotonic() - self._last_write < self.min_interval_seconds
        return bool(trainer.strategy.broadcast(soon))  # rank zero's clock decides: every rank saves or none

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._should_save_on_train_epoch_end(trainer) and self._too_soon(trainer):
            return
        super().on_train_epoch_end(trainer, pl_module)

    def on_validation_end(self, trainer, pl_module) -> None:
        if not self._should_save_on_train_epoch_end(trainer) and self._too_soon(trainer):
            return
        super().on_validation_end(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        # A fit that ended where last_epoch() could not see it coming (max_time, say) still ends with
        # its final state in last.ckpt (Lightning's own on_train_end saves only if this never saved).
        if self.save_last and not last_ckpt_written_now(trainer, self.dirpath):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def _save_checkpoint(self, trainer, filepath: str) -> None:
        written = self._last_checkpoint_saved
        same_step = bool(written) and self._last_global_step_saved == trainer.global_step
        if filepath != self.last_model_path or not same_step or written == filepath:
            return super()._save_checkpoint(trainer, filepath)
        if trainer.is_global_zero:
            atomic_link(written, filepath)
        trainer.strategy.barrier("EpochCheckpoint.link")
        self._last_checkpoint_saved = filepath
