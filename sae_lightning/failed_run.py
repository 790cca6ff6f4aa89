"""What a command that fails on bad input leaves behind: nothing of its own.

A run that fails on bad input (a store error, non-finite data in the first batches, a config
the SAE refuses) leaves no run folder: what this process wrote into it is removed, and the folder
too when Hydra made it fresh for this command (no run_dir= given: its name carries the pid).

Kept: anything of value or not ours. A folder with a checkpoint or sae/ (a diverged run keeps its
last good state, docs/training/runs.md), a resumed run's folder, and a run_dir= you gave (it may
have existed before; only what this process wrote into it after claiming it goes)."""

from __future__ import annotations

import shutil
from pathlib import Path

from omegaconf import DictConfig

from .atomic import as_disk_full
from .errors import UserError
from .run_dir import HYDRA_LOG_FILES, RunDir

WRITTEN_BY_THE_RUN = (RunDir.RUN, RunDir.CHECKPOINTS, "wandb")


def hydra_log_folder() -> Path | None:
    """The single run's log folder Hydra made. Hydra forgets its config when a step of its own fails
    (writing .hydra/ onto a full disk), but the log file it had opened in the folder still names it."""
    import logging

    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir).absolute()
    opened = [h.baseFilename for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    return Path(opened[-1]).parent if opened else None


def log_folder_full(err: BaseException) -> UserError | None:
    """Hydra writing the log folder's .hydra/ onto a full disk was its OSError traceback (and the
    folder stayed, its files empty): the disk-full line instead, naming the folder."""
    folder = hydra_log_folder()
    return as_disk_full(err, folder) if folder is not None else None


def existing_ancestor(folder: str | Path) -> Path:
    """The deepest part of `folder` that exists now: before Hydra creates it, what was already there."""
    path = Path(folder).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def discard_log_folder(folder: str | Path, existed: Path) -> None:
    """After a UserError of any Hydra command (single run): remove the log folder Hydra created for
    it, and the empty parents it created, when they hold nothing but Hydra's own files. `existed` is
    what `existing_ancestor` found before the command started: it and everything above it stay."""
    folder = Path(folder).absolute()
    if existed not in folder.parents:
        return  # a folder that was there before (a run_dir= you gave): not ours to remove
    if folder.is_dir():  # sae-train's discard_failed_run may have removed it already (through here)
        if any(entry.name not in HYDRA_LOG_FILES for entry in folder.iterdir()):
            return
        shutil.rmtree(folder / ".hydra", ignore_errors=True)
        (folder / "cli.log").unlink(missing_ok=True)
    while folder != existed:
        try:
            if folder.exists():
                folder.rmdir()  # only when empty: anything else in it stays
        except OSError:
            return
        folder = folder.parent


def discard_failed_run(run: RunDir, cfg: DictConfig, claimed: bool) -> None:
    """After a UserError of `sae-train` (single run): remove what it wrote, when nothing of value,
    and the folder itself when Hydra made it for this run and nothing else is left in it."""
    if cfg.get("ckpt_path") is not None or not run.root.is_dir():
        return
    if run.sae.exists() or any(run.checkpoints.glob("*.ckpt")):
        return
    if claimed:
        for name in WRITTEN_BY_THE_RUN:
            path = run / name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    if cfg.get("run_dir") is None and _made_by_hydra_for_this_run(run):
        discard_log_folder(run.root, existed=run.root.parent)  # its parents: the command's own clean-up


def _made_by_hydra_for_this_run(run: RunDir) -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.RUN:
        return False
    return Path(HydraConfig.get().runtime.output_dir).resolve() == run.root.resolve()
