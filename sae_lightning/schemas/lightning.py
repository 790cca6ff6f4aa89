"""The groups whose objects another library builds: `trainer` (Lightning's Trainer), `callbacks`
(Lightning's ModelCheckpoint, ours beside it) and `logger` (Lightning's W&B and CSV loggers). A
schema holds the arguments the project sets and documents, each with its default, meaning and
rule; conf/trainer/*.yaml, conf/callbacks/default.yaml and conf/logger/*.yaml are presets over
them. Any other argument of those classes is passed with `+` (`+trainer.limit_val_batches=2`,
`+callbacks.model_checkpoint.save_on_exception=true`) and checked by the library that takes it,
as validate.py lets a key through under a `_target_` that is not ours."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from .knobs import MAX_THREADS, POSITIVE, Rule, flag, is_int, knob, list_of, number, one_of, section, text, whole
from .sae import SAE_CONFIGS

PATH = text(example="<a folder>")  # one rule for every folder setting (paths, save_dir, dirpath)


def _devices(v: Any) -> bool:
    # On a CPU each device is a process Lightning starts by running the command again, and it takes
    # any number (devices=100000: 99,999 copies of the command); so a count is bounded as threads are.
    if is_int(v):
        return 1 <= v <= MAX_THREADS or v == -1
    if isinstance(v, str):
        return v == "auto" or re.fullmatch(r"\d+(,\d+)*,?", v) is not None and v.count(",") < MAX_THREADS
    return isinstance(v, list) and 0 < len(v) <= MAX_THREADS and all(is_int(x) and x >= 0 for x in v)


@dataclass
class TrainerConfig:
    """The Lightning Trainer, on CPU in one process by default (trainer=gpu, ddp, ddp_cpu, slurm)."""

    TARGET: ClassVar[str] = "pytorch_lightning.Trainer"
    default_root_dir: str = knob("${paths.output_dir}", "Lightning's own root folder: the run folder", PATH)
    accelerator: str = knob("cpu", "where the SAE trains", one_of("cpu", "gpu", "cuda", "mps", "tpu", "auto"))
    devices: Any = knob(
        1,
        "processes / GPUs",
        Rule(f"a number of devices from 1 to {MAX_THREADS}, -1 (all), auto, or a list of device ids", _devices),
    )
    num_nodes: int = knob(1, "machines (DDP over several nodes)", POSITIVE)
    strategy: str = knob("auto", "how the processes share the work (ddp: one SAE copy per process)", text())
    plugins: list | None = knob(
        None,
        "environment plugins, e.g. SLURM's auto-requeue (conf/trainer/slurm.yaml); null: none",
        Rule(
            "a list of plugin configs, each with a _target_ (see conf/trainer/slurm.yaml), or null",
            lambda v: isinstance(v, list) and all(isinstance(p, dict) and "_target_" in p for p in v),
            null=True,
        ),
    )
    max_epochs: int = knob(
        20,
        "passes over the training split (20: the study's setting for ~30k texts, docs/application/choosing-an-sae.md)",
        POSITIVE,
    )
    check_val_every_n_epoch: int | None = knob(1, "validation metrics every N epochs", whole(1, null=True))
    log_every_n_steps: int = knob(10, "how often step metrics go to the loggers", POSITIVE)
    gradient_clip_val: float | None = knob(1.0, "clip the gradient norm (null: off)", number(0, null=True))
    deterministic: Any = knob(True, "same seed, same weights (resume equality relies on it)", flag(also=("warn",)))
    sync_batchnorm: bool = knob(False, "Lightning's batch-norm sync across processes (the SAE has none)", flag())
    use_distributed_sampler: bool = knob(False, "the DataModule shards batches by rank itself", flag())
    enable_model_summary: bool = knob(False, "the SAE is one layer; the summary is noise", flag())
    num_sanity_val_steps: int = knob(0, "validation runs at epoch end anyway", whole(-1))
    enable_progress_bar: bool = knob(
        True, "bars on stderr in a terminal, one line per epoch in a log (false: neither)", flag()
    )


# Lightning's `precision` (passed with +trainer.precision=...) that the SAE trains under on a CPU:
# float32 or float64 weights, or bf16 autocast (TopK's sparse products then run in float32,
# kernels/active.py; Lightning runs "16-mixed" on a CPU as bf16-mixed, and says so). Half-precision
# weights ("bf16-true", "16-true") only where the SAE has no sparse kernels (SAEConfig.cpu_half_weights):
# torch's sparse CSR products have no bf16/fp16 CPU kernel.
CPU_PRECISIONS = ("32-true", "32", "64-true", "64", "bf16-mixed", "bf16", "16-mixed", "16")
HALF_WEIGHTS = ("bf16-true", "16-true")
FIX_PRECISION = "use trainer.precision=bf16-mixed (float32 weights, bf16 matmuls), 32-true or 64-true"


def precision_problem(trainer: dict[str, Any], architecture: str | None) -> str | None:
    """The one line refusing a `trainer.precision` the SAE `architecture` cannot train under on a CPU, or None:
    before any work, where Lightning would fail at the first backward pass with a traceback."""
    precision, accelerator = trainer.get("precision"), trainer.get("accelerator")
    if precision is None or str(precision) in CPU_PRECISIONS:
        return None
    if accelerator != "cpu":
        if accelerator != "auto":
            return None  # a GPU's precisions are Lightning's to check
        import torch

        if torch.cuda.is_available():
            return None
    if str(precision) not in HALF_WEIGHTS:
        return f"trainer.precision={precision} is not a precision the SAE trains under on a CPU; {FIX_PRECISION}"
    variant = SAE_CONFIGS.get(architecture)
    if variant is not None and variant.cpu_half_weights:
        return None
    return (
        f"trainer.precision={precision} cannot train a {architecture} SAE on a CPU (its sparse products have no "
        f"bf16/fp16 kernel there); {FIX_PRECISION}"
    )


# Set by hand on each machine of a cluster no scheduler runs (Lightning's own environment).
MANUAL_NODE_VARIABLES = ("NODE_RANK", "MASTER_ADDR")


def nodes_problem(num_nodes: Any, plugins: Any) -> str | None:
    """The one line refusing trainer.num_nodes > 1 where nothing says which machine this is (no
    SLURM, torchrun, MPI or LSF job, no NODE_RANK / MASTER_ADDR, no environment plugin), or None:
    the process then waited in the rendezvous for nodes nobody starts, forever, SIGTERM included."""
    if not is_int(num_nodes) or num_nodes <= 1 or plugins or any(v in os.environ for v in MANUAL_NODE_VARIABLES):
        return None
    from lightning_fabric.plugins.environments import (  # imported only for a run over several nodes
        LSFEnvironment,
        MPIEnvironment,
        SLURMEnvironment,
        TorchElasticEnvironment,
    )

    if any(env.detect() for env in (SLURMEnvironment, TorchElasticEnvironment, MPIEnvironment, LSFEnvironment)):
        return None
    return (
        f"trainer.num_nodes={num_nodes} but this process runs in no cluster job (SLURM, torchrun, MPI, LSF) and "
        "NODE_RANK is not set, so it would wait for the other machines forever; use trainer.num_nodes=1, or "
        "start the command on every machine (trainer=slurm, or NODE_RANK and MASTER_ADDR set on each)"
    )


@dataclass
class _Checkpoint:
    """What both checkpoint callbacks set: they write the one last.ckpt."""

    dirpath: str = knob("${paths.output_dir}/checkpoints", "last.ckpt lives here", PATH)
    save_last: Any = knob(True, "keep last.ckpt: what ckpt_path=last resumes", flag(also=("link",)))
    enable_version_counter: bool = knob(False, "overwrite last.ckpt, never last-v1.ckpt beside it", flag())


@dataclass
class EpochCheckpointConfig(_Checkpoint):
    """Lightning's ModelCheckpoint at epoch ends, at most once per min_interval_seconds and at the last
    epoch; last.ckpt a hard link to the epoch file (one write)."""

    TARGET: ClassVar[str] = "sae_lightning.training.callbacks.EpochCheckpoint"
    save_top_k: int = knob(1, "keep the newest epoch checkpoint beside last.ckpt (-1: all)", whole(-1))
    every_n_epochs: int | None = knob(1, "checkpoint every N epochs", whole(0, null=True))
    min_interval_seconds: float | None = knob(
        "${oc.select:callbacks.periodic_checkpoint.every_n_seconds,null}",
        "skip an epoch's checkpoint while the run's last checkpoint is younger than this much training time "
        "(the last epoch's is always written; default: the periodic checkpoint's every_n_seconds; null: every epoch)",
        number(0, null=True),
    )


@dataclass
class PeriodicCheckpointConfig(_Checkpoint):
    """The same last.ckpt, also rewritten mid-epoch (training/callbacks/periodic_checkpoint.py)."""

    TARGET: ClassVar[str] = "sae_lightning.training.callbacks.PeriodicCheckpoint"
    save_top_k: int = knob(0, "numbered files kept beside last.ckpt (0: none)", whole(-1))
    every_n_seconds: float | None = knob(
        30,
        "rewrite last.ckpt after this much training time (a kill loses at most this; a resume from it is exact; "
        "null: only the epoch checkpoint)",
        number(0, lo_open=True, null=True),
    )
    every_n_train_steps: int | None = knob(
        None, "or every N optimiser steps instead (set, it replaces every_n_seconds)", whole(0, null=True)
    )


@dataclass
class DeadFeaturesConfig:
    """Dead-feature statistics logged during training; no knobs."""

    TARGET: ClassVar[str] = "sae_lightning.training.callbacks.DeadFeatureStats"


@dataclass
class CallbacksConfig:
    """The Trainer's callbacks: checkpoints and dead-feature statistics (labels are a stage after export).
    `callbacks.<name>=null` drops one; `+callbacks.<name>._target_=...` adds one."""

    model_checkpoint: EpochCheckpointConfig = section(EpochCheckpointConfig, "the checkpoint at epoch ends")
    periodic_checkpoint: PeriodicCheckpointConfig = section(PeriodicCheckpointConfig, "the checkpoint mid-epoch")
    dead_features: DeadFeaturesConfig = section(DeadFeaturesConfig, "dead-feature statistics")


@dataclass
class WandbSettingsConfig:
    """W&B's own settings of the run."""

    TARGET: ClassVar[str] = "wandb.Settings"
    silent: bool = knob(True, "no W&B banner or end-of-run history (false: W&B's own output)", flag())
    console: str = knob(
        "off",
        "W&B leaves stdout/stderr alone (the run folder's log has them)",
        one_of("off", "auto", "wrap", "redirect", "wrap_raw", "wrap_emu"),
    )


@dataclass
class WandbLoggerConfig:
    """Weights & Biases: offline files under <run dir>/wandb unless you have logged in (`wandb login`)."""

    TARGET: ClassVar[str] = "pytorch_lightning.loggers.WandbLogger"
    project: str = knob("sae-lightning", "W&B project", text())
    name: str = knob("${domain.name}-${sae.architecture}", "run name", text())
    save_dir: str = knob("${paths.output_dir}", "the run folder gets wandb/", PATH)
    offline: Any = knob("${wandb_offline:}", "true unless a W&B login (API key) is found", flag())
    log_model: Any = knob(False, "the SAE files are in <run dir>/sae already", flag(also=("all",)))
    group: str = knob("${task_name}", "groups the jobs of a sweep", text())
    tags: list[str] = knob([], "free-form tags", list_of(text(), "a list of strings"))
    settings: WandbSettingsConfig = section(WandbSettingsConfig, "W&B's own settings of the run")


@dataclass
class CSVLoggerConfig:
    """Plain CSV metrics under <run dir>/csv/."""

    TARGET: ClassVar[str] = "pytorch_lightning.loggers.CSVLogger"
    save_dir: str = knob("${paths.output_dir}", "the run folder", PATH)
    name: str = knob("csv", "subfolder", text())


@dataclass
class WandbLogger:
    """logger=wandb: the group's node holds one logger, under its name."""

    wandb: WandbLoggerConfig = section(WandbLoggerConfig, "the W&B logger")


@dataclass
class CSVLogger:
    """logger=csv."""

    csv: CSVLoggerConfig = section(CSVLoggerConfig, "the CSV logger")


LOGGER_CONFIGS: dict[str, type] = {"wandb": WandbLogger, "csv": CSVLogger}


@dataclass
class PathsConfig:
    """Where things live on disk."""

    cache_dir: str = knob(
        "${default_cache_dir:}",
        "embedding stores, shared by all runs ($XDG_CACHE_HOME/sae-lightning, else ~/.cache/sae-lightning)",
        PATH,
    )
    log_dir: str = knob(
        "${outputs_root:}",
        "root of all run folders ($SAE_LIGHTNING_OUTPUTS, else outputs, relative to where you run)",
        PATH,
    )
    output_dir: str = knob("${hydra:runtime.output_dir}", "this run's folder (set by Hydra)", PATH)
