"""Training progress: Lightning's bars on stderr in a terminal (TQDMProgressBar writes to stdout,
where a run's results, the summary sae-train prints at the end, belong), one line per epoch in a log."""

from __future__ import annotations

import logging
import math
import sys
import time

from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.callbacks.progress.tqdm_progress import Tqdm

log = logging.getLogger("sae_lightning.training")


class StderrProgressBar(TQDMProgressBar):
    """The same bars as TQDMProgressBar (descriptions, positions, leave), written to stderr."""

    def _tqdm(self, desc: str, leave: bool, offset: int = 0, **kwargs) -> Tqdm:
        return Tqdm(
            desc=desc,
            position=2 * self.process_position + offset,
            disable=self.is_disabled,
            leave=leave,
            dynamic_ncols=True,
            file=sys.stderr,
            bar_format=self.BAR_FORMAT,
            **kwargs,
        )

    def init_sanity_tqdm(self) -> Tqdm:
        return self._tqdm(self.sanity_check_description, leave=False)

    def init_train_tqdm(self) -> Tqdm:
        return self._tqdm(self.train_description, leave=True, smoothing=0)

    def init_predict_tqdm(self) -> Tqdm:
        return self._tqdm(self.predict_description, leave=True, smoothing=0)

    def init_validation_tqdm(self) -> Tqdm:
        has_main_bar = self.trainer.state.fn != "validate"  # no train bar under trainer.validate()
        return self._tqdm(self.validation_description, leave=not has_main_bar, offset=int(has_main_bar))

    def init_test_tqdm(self) -> Tqdm:
        return self._tqdm("Testing", leave=True)


def bars_wanted() -> bool:
    """Bars only where someone watches them redraw: stdout and stderr both terminals. A log (a
    redirect, a pipe, a CI job) gets EpochLines instead: a bar redrawn per step there is noise."""
    return sys.stdout.isatty() and sys.stderr.isatty()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class EpochLines(Callback):
    """One log line per epoch in place of the bars: step, the epoch's mean training loss, fve (the
    last logged training value, and validation's when it ran), steps per second, time left."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.first_step = 0
        self.loss_sum, self.batches = 0.0, 0

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.started, self.first_step = time.perf_counter(), trainer.global_step  # a resume starts mid-run

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.loss_sum, self.batches = 0.0, 0

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else None
        if loss is not None:  # a tensor sum: no device sync per step
            self.loss_sum, self.batches = self.loss_sum + loss.detach(), self.batches + 1

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero or self.started is None:
            return
        m = trainer.callback_metrics
        step, total = trainer.global_step, trainer.estimated_stepping_batches
        elapsed = time.perf_counter() - self.started
        rate = (step - self.first_step) / elapsed if elapsed > 0 else float("nan")
        parts = [f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}", f"step {step}/{total}"]
        if self.batches:
            parts.append(f"loss {float(self.loss_sum) / self.batches:.4g}")
        parts += [
            f"{name} {float(m[key]):.4g}" for name, key in (("fve", "train/fve"), ("val fve", "val/fve")) if key in m
        ]
        parts.append(f"{rate:.1f} steps/s")
        if rate > 0 and math.isfinite(total):
            parts.append(f"{_duration((total - step) / rate)} left")
        log.info("%s", ", ".join(parts))
