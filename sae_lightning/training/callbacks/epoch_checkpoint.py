"""The epoch checkpoint: `epoch=N-step=M.ckpt` written once, and last.ckpt made a second name of it.

Lightning's ModelCheckpoint with `save_last: true` serialises the same state twice each epoch,
the epoch file and then last.ckpt, each written and fsynced (28 MB for the default SAE; the
larger share of what checkpointing cost a default run, benchmarks/bench_overhead.py). Its
`save_last: link` avoids that with a symlink, but re-points it only after deleting the old epoch
file (a kill between the two leaves `ckpt_path=last` dangling) and, when an epoch writes no
epoch file, points last.ckpt back at an older one over a newer periodic checkpoint. Here
last.ckpt becomes a hard link to the epoch file just written, renamed into place (atomic_link):
its content is that file's, the old epoch file can go without touching it, and an epoch that
wrote no epoch file saves last.ckpt as Lightning does."""

from __future__ import annotations

from pytorch_lightning.callbacks import ModelCheckpoint

from ...atomic import atomic_link


class EpochCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose last.ckpt is a hard link to the checkpoint it wrote at the same step.

    The linked file's callback state differs from a fresh save's only in `last_model_path`
    (Lightning sets it to last.ckpt just before saving last.ckpt): after the first epoch it is
    last.ckpt already, and before it "" (no previous last.ckpt to remove), so a run resumed from
    either ends exactly as an uninterrupted one."""

    def _save_checkpoint(self, trainer, filepath: str) -> None:
        written = self._last_checkpoint_saved
        same_step = bool(written) and self._last_global_step_saved == trainer.global_step
        if filepath != self.last_model_path or not same_step or written == filepath:
            return super()._save_checkpoint(trainer, filepath)
        if trainer.is_global_zero:
            atomic_link(written, filepath)
        trainer.strategy.barrier("EpochCheckpoint.link")
        self._last_checkpoint_saved = filepath
