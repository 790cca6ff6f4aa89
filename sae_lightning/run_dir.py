"""The run folder's owner: its file names, its readers and writers. Nothing else spells the name
of a file of a run; docs/reference/run-folder.md describes the same layout.

    <run>/run.json           which store, split, architecture and stages the run has (RunDir.run_info)
    <run>/checkpoints/       last.ckpt (resume) and the newest epoch checkpoint
    <run>/sae/               cfg.json, sae_weights.safetensors, sparsity.safetensors (SAELens layout)
    <run>/metrics.json       {"metrics", "timings_s", "units"} of training, written once at export
    <run>/labelings/<id>/    one labelling each (labeling.py): features.parquet, families.parquet,
                             labels.json (its settings, summary, timings), report.html, summary.md
    <run>/labeling.json      {"current": "<id>"}: which labelling is the run's, switched atomically
    <run>/diff/<a>-vs-<b>/   sae-diff's tables and page (diff/write.py)
    <run>/features.parquet   ... and the other files of the current labelling: hard-linked copies
                             for people and tools that open <run>/report.html; our own readers
                             resolve the current labelling through RunDir.labeling() instead

The atomic writers live in atomic.py and are re-exported here."""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from .atomic import DISK_FULL, atomic_folder, atomic_write, move_into_place, read_json, write_json
from .errors import UserError
from .labeling import Labeling
from .run_schema import metrics_file

__all__ = ["DISK_FULL", "Labeling", "RunDir", "atomic_folder", "atomic_write", "read_json", "write_json"]


class RunDir:
    """One run's folder. Nothing else spells the names of its files."""

    RUN, METRICS, SAE, CHECKPOINTS, LAST = "run.json", "metrics.json", "sae", "checkpoints", "last.ckpt"
    SAE_CFG, SAE_WEIGHTS, SPARSITY = "cfg.json", "sae_weights.safetensors", "sparsity.safetensors"
    LABELINGS, CURRENT, HYDRA_CONFIG, DIFF = "labelings", "labeling.json", ".hydra/config.yaml", "diff"
    FINISHED = (f"{SAE}/{SAE_CFG}", f"{SAE}/{SAE_WEIGHTS}", METRICS)  # what training leaves, metrics.json last

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __truediv__(self, name: str) -> Path:
        return self.root / name

    def __str__(self) -> str:
        return str(self.root)

    @property
    def sae(self) -> Path:
        return self.root / self.SAE

    @property
    def checkpoints(self) -> Path:
        return self.root / self.CHECKPOINTS

    @property
    def last_ckpt(self) -> Path:
        return self.checkpoints / self.LAST

    @property
    def metrics_file(self) -> Path:
        return self.root / self.METRICS

    @property
    def run_file(self) -> Path:
        return self.root / self.RUN

    @property
    def hydra_config(self) -> Path:
        return self.root / self.HYDRA_CONFIG

    def diff_dir(self, name: str) -> Path:
        """Where `sae-diff` writes one comparison (`<a>-vs-<b>`, `matrix`)."""
        return self.root / self.DIFF / name

    def claim(self) -> None:
        """Make this folder a new run's, atomically: `checkpoints/` is created exclusively, so of
        two processes pointed at one folder exactly one goes on, and the other writes nothing."""
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self.checkpoints.mkdir()
        except FileExistsError:
            raise UserError(f"{self.root} already holds a run (it has {self.CHECKPOINTS}/); resume it with "
                            f"`sae-train run_dir={self.root} ckpt_path=last`, or leave run_dir unset for a new folder") from None

    def has_export(self) -> bool:
        """The SAE and metrics.json are written (training ended and nothing of it can be lost)."""
        return (self.sae / self.SAE_CFG).is_file() and self.metrics_file.is_file()

    def missing(self) -> list[str]:
        """What a finished run has that this folder lacks (run.json first)."""
        return [f for f in (self.RUN, *self.FINISHED) if not (self.root / f).is_file()]

    def run_info(self) -> dict:
        return read_json(self.run_file, "it is written when a run starts; start the run again")

    def write_run_info(self, info: dict) -> Path:
        return write_json(self.run_file, info)

    # ---- metrics.json: training's numbers, written once -----------------------------------------
    def _metrics_json(self) -> dict:
        return read_json(self.metrics_file, f"resume the training with `sae-train run_dir={self.root} ckpt_path=last`")

    def metrics(self) -> dict:
        """metrics.json's "metrics" (fve, l0, dead_frac, ...); a flat file of an older run as it is."""
        data = self._metrics_json()
        return dict(data["metrics"]) if isinstance(data.get("metrics"), dict) else data

    def timings(self) -> dict:
        """metrics.json's "timings_s": seconds of training."""
        return dict(self._metrics_json().get("timings_s") or {})

    def write_metrics(self, metrics: dict, timings_s: dict | None = None) -> Path:
        return write_json(self.metrics_file, metrics_file(metrics, timings_s or {}))

    def results(self) -> dict:
        """One flat view for readers that show numbers (the report, sae-compare, the summary line):
        the training metrics, then the current labelling's summary (nothing of it when unlabelled)."""
        labeling = self.labeling()
        return {**self.metrics(), **(labeling.summary() if labeling else {})}

    # ---- labellings ------------------------------------------------------------------------------
    @property
    def current_file(self) -> Path:
        return self.root / self.CURRENT

    def labeling(self) -> Labeling | None:
        """The run's current labelling: the one labeling.json names; for a run labelled before
        labelings/ existed, its top-level files; None when the run is not labelled."""
        if self.current_file.is_file():
            current = read_json(self.current_file, f"label the run again (sae-label run_dir={self.root})").get("current")
            folder = self.root / self.LABELINGS / str(current)
            if not current or not folder.is_dir():
                raise UserError(f"{self.current_file} names labelling {current!r}, which is not under "
                                f"{self.root / self.LABELINGS}; label the run again (sae-label run_dir={self.root})")
            return Labeling(folder, str(current))
        legacy = Labeling(self.root)
        return legacy if legacy.has_features() else None

    def labelings(self) -> list[Labeling]:
        """Every finished labelling of the run, oldest first (by labels.json's `created`)."""
        folder = self.root / self.LABELINGS
        found = [Labeling(p, p.name) for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")] \
            if folder.is_dir() else []
        return sorted(found, key=lambda lab: (lab.info().get("created", ""), lab.id))  # two in one second too

    @contextlib.contextmanager
    def new_labeling(self) -> Iterator[Labeling]:
        """`with run.new_labeling() as lab:` write lab's files; on leaving, `commit` makes it the
        current labelling, and anything raised (Ctrl-C included) removes it instead. Earlier
        labellings stay as they are either way."""
        self._remove_abandoned()
        now = datetime.now(timezone.utc)
        labeling_id = f"{now:%Y-%m-%d_%H-%M-%S}_{secrets.token_hex(3)}"
        tmp = self.root / self.LABELINGS / f".{labeling_id}.{os.getpid()}.tmp"
        tmp.mkdir(parents=True)
        labeling = Labeling(tmp, labeling_id)
        labeling.created = now.isoformat(timespec="microseconds")
        try:
            yield labeling
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.commit(labeling)

    def _remove_abandoned(self) -> None:
        """Temp folders of labellings whose process is gone (killed): never current, so removable.
        One whose process still runs (a labelling going on beside this one) is left alone."""
        for tmp in (self.root / self.LABELINGS).glob(".*.tmp"):
            pid = tmp.name.rsplit(".", 2)[-2]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(tmp, ignore_errors=True)

    def commit(self, labeling: Labeling) -> Labeling:
        """Make a new labelling the run's current one: its folder is renamed into place (it has its
        tables and labels.json by then), labeling.json switches to it in one rename, and the
        top-level copies follow. A kill before the switch leaves the earlier labelling current."""
        if not labeling.labels_path.is_file():
            raise ValueError(f"{labeling.folder} has no {Labeling.LABELS}: write it before commit")
        final = self.root / self.LABELINGS / labeling.id
        move_into_place(labeling.folder, final)  # a new id: nothing is there to be moved aside
        labeling.folder = final
        write_json(self.current_file, {"current": labeling.id})
        self.publish(labeling)
        return labeling

    def publish(self, labeling: Labeling) -> None:
        """Mirror the current labelling's files at the top of the run folder (hard links: no copy
        on disk), and drop a top-level file the labelling has not (no stale families.parquet)."""
        if labeling.folder == self.root:
            return
        for name in Labeling.FILES:
            src, dst = labeling.folder / name, self.root / name
            if src.is_file():
                _link(src, dst)
            else:
                with contextlib.suppress(FileNotFoundError):
                    dst.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _link(src: Path, dst: Path) -> None:
    """dst <- src in one rename: a hard link where the file system has them, else a copy."""
    def write(tmp: Path) -> None:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
    atomic_write(dst, write)
