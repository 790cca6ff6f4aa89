"""The run folder's owner: its file names, its readers and writers, and the one atomic writer that
every file of a run and of an embedding store goes through.

    <run>/run.json           which store, split, architecture and stages the run has (RunDir.run_info)
    <run>/checkpoints/       last.ckpt (resume) and the newest epoch checkpoint
    <run>/sae/               cfg.json, sae_weights.safetensors, sparsity.safetensors (SAELens layout)
    <run>/metrics.json       final validation metrics, then the label summary merged in
    <run>/features.parquet   labels (sae-label), families.parquet, report.html, summary.md

A file is written to a uniquely named temp file beside it, fsynced, then renamed over the target:
a kill leaves the old file or the new one, never a part. A full disk is one line, and the temp
file goes with it."""
from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from .errors import UserError

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _disk_full(path: Path, err: OSError) -> UserError:
    return UserError(f"disk full while writing {path} ({os.strerror(err.errno)}); nothing was left half-written: "
                     f"free space on {path.parent} (or write elsewhere) and run the command again")


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """`write(tmp)` fills a temp file beside `path` (same suffix, so np.save keeps the name), which
    then replaces `path`. Anything raised, a full disk included, removes the temp file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)  # the rename itself survives a power cut
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, OSError) and err.errno in DISK_FULL:
            raise _disk_full(path, err) from None
        raise
    return path


def atomic_folder(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """A folder written whole or not at all: `write(tmp_dir)`, each file fsynced, then renamed into
    place (an older folder of that name is swapped out first and removed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    old = None
    try:
        write(tmp)
        for file in tmp.rglob("*"):
            if file.is_file():
                _fsync(file)
        if path.exists():
            old = path.with_name(f"{tmp.name}.old")
            os.replace(path, old)
        os.replace(tmp, path)
        _fsync(path.parent)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError) and err.errno in DISK_FULL:
            raise _disk_full(path, err) from None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return path


def write_json(path: str | Path, obj: dict) -> Path:
    """JSON with NaN/Inf written as null (strict JSON readers choke on NaN)."""
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in obj.items()}
    text = json.dumps(clean, indent=2, sort_keys=True)
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def read_json(path: Path, fix: str) -> dict:
    """A JSON object file, or one line naming the file and `fix`."""
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path} is missing; {fix}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path} is corrupt ({err}); {fix}") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path} must hold a JSON object; {fix}")
    return obj


class RunDir:
    """One run's folder. Nothing else spells the names of its files."""

    RUN, METRICS, SAE, CHECKPOINTS, LAST = "run.json", "metrics.json", "sae", "checkpoints", "last.ckpt"
    FEATURES, FAMILIES, REPORT, SUMMARY = "features.parquet", "families.parquet", "report.html", "summary.md"

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
        return (self.sae / "cfg.json").is_file() and self.metrics_file.is_file()

    def run_info(self) -> dict:
        return read_json(self.root / self.RUN, "it is written when a run starts; start the run again")

    def write_run_info(self, info: dict) -> Path:
        return write_json(self.root / self.RUN, info)

    def metrics(self) -> dict:
        return read_json(self.metrics_file, f"resume the training with `sae-train run_dir={self.root} ckpt_path=last`")

    def write_metrics(self, metrics: dict) -> Path:
        return write_json(self.metrics_file, metrics)

    def merge_metrics(self, extra: dict) -> Path:
        """metrics.json updated with `extra` (the label summary), keeping the training metrics."""
        return self.write_metrics({**self.metrics(), **extra})
