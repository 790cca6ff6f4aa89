"""run.json of a finished run, checked: what relabel (labels), families and search read before
they open the store. Apart from label_run.py so that families/build.py can use it while label_run.py builds
the families (no import cycle between the two)."""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..run_dir import RunDir

RUN_KEYS = ("store_path", "val_fraction", "seed")


def read_run_info(run_dir: str | Path) -> dict:
    """run.json, checked; one line naming what makes `run_dir` not a finished run, and the way out."""
    run = RunDir(run_dir)
    if not run.root.is_dir():
        what = "it is a file, not a folder" if run.root.exists() else "the folder does not exist"
        raise UserError(f"{run.root} is not a run dir: {what}; pass run_dir=<a finished run folder>")
    if not run.has_export() and run.last_ckpt.is_file():
        raise UserError(f"{run.root} has not finished training (no sae/ or metrics.json, but a checkpoint): "
                        f"`sae-train run_dir={run.root} ckpt_path=last` recovers it")
    missing = [f for f in RunDir.FINISHED[:2] if not (run / f).is_file()]
    info: dict = {}
    if not run.run_file.is_file():
        missing.append(RunDir.RUN)
    else:
        info = run.run_info()
        missing += [f"{RunDir.RUN}:{key}" for key in RUN_KEYS if key not in info]
    if missing:
        raise UserError(f"{run.root} is not a finished run: missing {', '.join(missing)} "
                        "(a run dir needs sae/cfg.json, sae/sae_weights.safetensors and run.json "
                        "with store_path, val_fraction and seed)")
    return info
