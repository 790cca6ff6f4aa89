"""One run, top to bottom: embedding store -> DataModule -> SAE training -> files of the run.

Stages: embed -> train (checkpoints) -> export (sae/ and metrics.json, the moment training ends) ->
label -> families -> report, as in docs/concepts.md. Each step is a call into the module that owns
it; the stages after export are `finish_run`, which `sae-label run_dir=<run>` also runs."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

import pytorch_lightning as pl
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only
from pytorch_lightning.utilities.exceptions import MisconfigurationException, SIGTERMException

from .data.datamodule import EmbeddingDataModule, split_indices
from .data.embed import build_store_from_cfg
from .data.store import EmbeddingStore
from .errors import UserError
from .failed_run import discard_failed_run
from .labels.scoring.judge import check_judge
from .run_dir import RunDir
from .run_schema import VERDICTS, headline_line, headline_scalars
from .runtime import kept_global_state, restore_environ
from .schemas.knobs import from_node
from .schemas.labeling import LabelingConfig
from .schemas.sae import SAEConfig
from .schemas.training import DataConfig, ModuleConfig
from .training.callbacks import RunExport
from .training.callbacks.stop_on_signal import StopOnSignal
from .training.checkpoint_io import (
    AtomicCheckpointIO,
    check_checkpoint_fits,
    load_checkpoint_file,
    prune_epoch_checkpoints,
)
from .training.interrupts import DeferredSignals, RunInterrupted
from .training.memory import check_training_fits
from .training.module import NonFiniteError, SAEModule

log = logging.getLogger(__name__)


def sae_settings(cfg: DictConfig, store: EmbeddingStore) -> SAEConfig:
    """The SAE's config: the `sae` group plus what only the store knows (width, model, domain)."""
    sae = OmegaConf.to_container(cfg.sae, resolve=True)
    d_in = sae.pop("d_in", None)
    if d_in is not None and int(d_in) != store.dim:
        raise UserError(
            f"sae.d_in={d_in} but the embedding store {store.path} is {store.dim} wide; "
            "drop sae.d_in (it is taken from the store) or use another store"
        )
    sae["d_in"] = store.dim
    # AuxK's "dead" is counted over dead_after_samples training samples; more than the store's train
    # split would take several epochs to call any latent dead. Fitted here, before cfg.json records it;
    # a note, not a warning: every corpus under ~11,000 texts (each wiki topic) meets it, and nothing is amiss.
    n_train = len(split_indices(len(store), cfg.data.val_fraction, 0)[0])  # its size needs no seed
    if sae.get("dead_after_samples") and int(sae["dead_after_samples"]) > n_train:
        log.info(
            "sae.dead_after_samples=%d exceeds the %d training samples; counting over one epoch instead",
            sae["dead_after_samples"],
            n_train,
        )
        sae["dead_after_samples"] = n_train
    sae["metadata"] = {
        "model_name": store.model_name,
        "domain": cfg.domain.get("name"),
        "store_fingerprint": store.fingerprint,
        "domains": store.manifest.get("domains", []),
    }
    return SAEConfig.from_dict(sae)


def build_module(cfg: DictConfig, store: EmbeddingStore) -> SAEModule:
    sae = sae_settings(cfg, store)
    check_training_fits(sae.d_in, sae.d_sae, int(cfg.data.batch_size), str(cfg.trainer.accelerator))
    return SAEModule(sae, from_node(ModuleConfig, cfg.module))


def build_callbacks(cfg: DictConfig, run: RunDir, signals: DeferredSignals) -> list[pl.Callback]:
    callbacks = [instantiate(c) for c in cfg.callbacks.values() if c is not None and "_target_" in c]
    if cfg.labeling.enabled and cfg.labeling.every_n_epochs:  # the final labelling is a stage after export
        from .labels.training_callback import KeyBERTLabels

        callbacks.append(KeyBERTLabels(from_node(LabelingConfig, cfg.labeling), output_dir=str(run)))
    if cfg.trainer.get("enable_progress_bar", True):  # Lightning's own bar would write to stdout
        from .training.callbacks.progress import EpochLines, StderrProgressBar, bars_wanted

        callbacks.append(StderrProgressBar() if bars_wanted() else EpochLines())
    callbacks += [StopOnSignal(signals, run.last_ckpt), RunExport(run.root)]
    return callbacks


def build_loggers(cfg: DictConfig) -> list:
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None and "_target_" in c]
    for logger in loggers:
        # Lightning's WandbLogger always passes anonymous=None, which W&B >= 0.19 warns about on every run
        # ("has no effect"); the run is created on first use, so dropping the key here silences it.
        init = getattr(logger, "_wandb_init", None)
        if isinstance(init, dict) and init.get("anonymous", False) is None:
            del init["anonymous"]
    return loggers


def resolve_ckpt(cfg: DictConfig, run: RunDir) -> str | None:
    """`ckpt_path=last` means this run folder's last.ckpt; a fresh run claims its folder first, so
    it never writes into a folder another run (finished or running) owns."""
    if cfg.ckpt_path is None:
        if run.requeued_by_slurm():
            return None  # Lightning resumes from the hpc checkpoint it wrote before the requeue
        if rank_zero_only.rank == 0:
            run.claim()
        return None
    path = run.last_ckpt if cfg.ckpt_path == "last" else Path(cfg.ckpt_path)
    if not path.is_file():
        raise UserError(
            f"no checkpoint at {path}; pass run_dir=<an earlier run folder> with ckpt_path=last, "
            "or ckpt_path=<a .ckpt file>"
        )
    return str(path)


def data_settings(cfg: DictConfig) -> dict:
    """The settings that decide which rows a run trains and validates on, and in what order: the
    split (seed, val_fraction) and the shuffle. run.json keeps them; a resume must not change them."""
    return {
        "seed": cfg.seed,
        "val_fraction": cfg.data.val_fraction,
        **{k: cfg.data.get(k) for k in ("shuffle", "block_rows", "window_blocks", "drop_last")},
    }


def describe_run(cfg: DictConfig, store: EmbeddingStore) -> dict:
    """run.json: what resume checks and what `sae-label` needs to finish the run without the config."""
    families = OmegaConf.to_container(cfg.families, resolve=True) if cfg.labeling.enabled else None
    texts = store.metadata()["text"]
    return {
        "store_path": str(store.path),
        "store_fingerprint": store.fingerprint,
        **data_settings(cfg),
        "domain": cfg.domain.get("name"),
        "model_name": store.model_name,
        "architecture": cfg.sae.architecture,
        "d_in": store.dim,
        "d_sae": cfg.sae.d_sae,
        "has_texts": bool(texts.astype(str).str.len().gt(0).any()),
        "labeling": bool(cfg.labeling.enabled),
        "families": families if families and families.pop("enabled") else None,
    }


# What a resume must keep: the data (the store, which the domain's source options and limit key,
# and the split and order) and the SAE's shape. Known from the config alone, checked before the store:
RESUME_DATA_KEYS = ("seed", "val_fraction", "shuffle", "block_rows", "window_blocks", "drop_last")
RESUME_KEYS = ("store_fingerprint", "architecture", "d_in", "d_sae", *RESUME_DATA_KEYS)


def check_resume(run: RunDir, cfg: DictConfig, info: dict | None = None) -> None:
    """A resume must continue the same run: same domain, store, split, shuffle, architecture and widths."""
    if not run.run_file.is_file():
        return  # a checkpoint from elsewhere (ckpt_path=<file>): Lightning checks the weights' shapes
    before = run.run_info()
    if info is None:
        now = {
            "domain": cfg.domain.get("name"),
            "architecture": cfg.sae.architecture,
            "d_sae": cfg.sae.d_sae,
            **data_settings(cfg),
        }
        keys = tuple(now)
    else:
        keys, now = RESUME_KEYS, info
    changed = [f"{k}={now[k]} (the run has {before[k]})" for k in keys if k in before and before[k] != now[k]]
    if changed:
        raise UserError(
            f"cannot resume {run}: {', '.join(changed)}; resume with the run's own settings, "
            "or leave run_dir unset to start a new run"
        )


def train(cfg: DictConfig) -> dict | None:
    """The whole run; returns the trainer's final metrics (what metrics.json's "metrics" holds:
    fve, l0, dead_frac, ...; None on ranks other than zero or with train=false). Ctrl-C or SIGTERM
    saves a checkpoint, prints the command that continues, and exits 130 / 143."""
    run = RunDir(cfg.paths.output_dir)
    with DeferredSignals() as signals, kept_global_state():  # Lightning's flags do not outlive the run
        try:
            return _train(cfg, run, signals)
        except UserError:
            if rank_zero_only.rank == 0:
                discard_failed_run(run, cfg, claimed=run.claimed)
            raise
        except RunInterrupted as stop:
            if run.has_export():
                how = f"sae-label run_dir={run}"
            elif run.last_ckpt.is_file():
                how = f"sae-train run_dir={run} ckpt_path=last"
            else:  # before the first checkpoint (embedding, set-up): the store keeps its finished shards
                how = "the same command again"
            print(f"interrupted by {stop}; resume with: {how}", file=sys.stderr)
            raise SystemExit(stop.exit_code) from None


def _trainer(cfg: DictConfig, **parts) -> pl.Trainer:
    """Lightning's Trainer from cfg.trainer. What it refuses to run here (trainer.accelerator=gpu
    without a GPU, a strategy it does not know) is bad input, refused before any step: one line."""
    try:
        return instantiate(cfg.trainer, **parts)
    except InstantiationException as err:
        cause = err.__cause__
        if not isinstance(cause, (MisconfigurationException, ValueError)):
            raise
        raise UserError(
            f"the trainer settings cannot run here: {str(cause).splitlines()[0]}; change trainer.accelerator, "
            "trainer.devices or trainer.strategy (trainer.accelerator=auto uses what this machine has)"
        ) from None


def _train(cfg: DictConfig, run: RunDir, signals: DeferredSignals) -> dict | None:
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    labeling = cfg.get("labeling")
    if labeling is not None and labeling.get("enabled", True):  # refused now, not after the training
        check_judge(from_node(LabelingConfig, labeling).judge_model)
    resuming = cfg.get("train", True) and cfg.ckpt_path is not None
    if resuming:
        check_resume(run, cfg)
        if run.has_export():  # nothing to train; finishing is sae-label's job, and it changes nothing here
            print(
                f"{run} has finished training (sae/, metrics.json); nothing to resume. "
                f"Label or finish it with: sae-label run_dir={run}"
            )
            return run.metrics()
        load_checkpoint_file(resolve_ckpt(cfg, run))  # a file that is no checkpoint: refused before the store
    store = build_store_from_cfg(cfg)
    log.info("store ready: %s", store)
    if not cfg.get("train", True):
        return None

    info = describe_run(cfg, store)
    if resuming:
        check_resume(run, cfg, info)
    datamodule = EmbeddingDataModule(str(store.path), from_node(DataConfig, cfg.data))
    module = build_module(cfg, store)  # config errors before the folder is claimed
    ckpt_path = resolve_ckpt(cfg, run)
    if ckpt_path is not None:
        check_checkpoint_fits(ckpt_path, module)
    plugins = [*instantiate(cfg.trainer.get("plugins") or []), AtomicCheckpointIO()]
    callbacks = build_callbacks(cfg, run, signals)
    export = next(c for c in callbacks if isinstance(c, RunExport))
    bars = any(isinstance(c, pl.callbacks.ProgressBar) for c in callbacks)  # else Lightning adds its own, on stdout
    # No validation rows (data.val_fraction=0, a one-text corpus): no validation loop, whose empty
    # loader Lightning otherwise warned about on stderr each run, with its own source path.
    no_val = {"limit_val_batches": 0} if not len(split_indices(len(store), cfg.data.val_fraction, 0)[1]) else {}
    trainer = _trainer(
        cfg,
        callbacks=callbacks,
        logger=build_loggers(cfg) or False,
        plugins=plugins,
        enable_progress_bar=bars,
        **no_val,
    )
    if rank_zero_only.rank == 0 and not resuming and not run.requeued_by_slurm():
        run.write_run_info(info)
    for logger in trainer.loggers:  # the whole composed config, so every run is reproducible from W&B
        logger.log_hyperparams({"cfg": OmegaConf.to_container(cfg, resolve=True), "store": store.manifest})

    export_job_for_ddp_children(run.root)
    env_before = dict(os.environ)
    try:  # the loggers stay open through the labelling, so W&B's summary gets its label_quality
        try:
            with signals.deferred():
                trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        except NonFiniteError as err:
            raise UserError(f"training stopped: {err}; {kept_checkpoint(run)}") from err
        except SIGTERMException:  # Lightning's own SIGTERM check fired first (during validation)
            raise RunInterrupted(signal.SIGTERM) from None
        finally:
            forget_ddp(env_before)
        if trainer.interrupted:
            raise UserError(f"training was interrupted; resume with: sae-train run_dir={run} ckpt_path=last")
        if rank_zero_only.rank != 0:
            return None
        prune_epoch_checkpoints(trainer, run.checkpoints)
        finish_run(run, from_node(LabelingConfig, cfg.labeling))
        log_labels(trainer, run)
    finally:
        finish_loggers(trainer)
    report(run)
    # the trainer's own numbers; under ddp_spawn the export ran in a worker, and only the file has them
    return export.metrics if export.metrics is not None else run.metrics()


def kept_checkpoint(run: RunDir) -> str:
    """Which state survived a stop: checkpoints are written only of states that passed the checks."""
    if not run.last_ckpt.is_file():
        return "no checkpoint was written before it; lower module.lr or check the data and start a new run"
    step = load_checkpoint_file(run.last_ckpt).get("global_step")
    return f"{run.last_ckpt} (step {step}) keeps the last good state"


def finish_run(run: RunDir, labeling: LabelingConfig) -> None:
    """The stages after export: labels, families and the report, each one `sae-label` can redo."""
    from .label_run import NoTexts, label_run_dir

    if not run.run_info().get("labeling", True):
        return
    try:
        label_run_dir(run.root, labeling)
    except NoTexts:
        print(f"note: {run} has no texts (domain=npy without domain.metadata), so its features are not labelled")


def export_job_for_ddp_children(out: Path) -> None:
    """Tell DDP ranks started as subprocesses which folder and overrides are this job's (read by
    hydra_setup.ddp_child_argv): one output folder per job, also inside a multirun."""
    import json
    import os

    from hydra.core.hydra_config import HydraConfig

    from .hydra_setup import JOB_DIR_ENV, JOB_OVERRIDES_ENV

    if HydraConfig.initialized() and rank_zero_only.rank == 0:
        os.environ[JOB_DIR_ENV] = str(out)
        os.environ[JOB_OVERRIDES_ENV] = json.dumps(list(HydraConfig.get().overrides.task))


def forget_ddp(env_before: dict[str, str]) -> None:
    """Undo what a DDP fit leaves in this process: Lightning sets LOCAL_RANK, WORLD_SIZE, MASTER_PORT
    ... in os.environ, and the next job of a multirun would then think its ranks were started
    externally and wait for processes that never come."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    restore_environ(env_before)


def log_labels(trainer: pl.Trainer, run: RunDir) -> None:
    """The final labelling's headline figure (run_schema.HEADLINE) and its baselines, to every
    logger under `labels/`, as the labelling callback logs its own."""
    labeling = run.labeling()
    if labeling is None:
        return
    scalars = {f"labels/{k}": v for k, v in headline_scalars(labeling.summary()).items()}
    for logger in trainer.loggers:
        logger.log_metrics(scalars, step=trainer.global_step)
        logger.save()  # fit has finalized the loggers: a CSV logger writes only on save


def finish_loggers(trainer: pl.Trainer) -> None:
    """Close each W&B run, so the next job of a multirun starts a clean one."""
    for logger in trainer.loggers:
        if type(logger).__name__ == "WandbLogger" and logger._experiment is not None:
            logger.experiment.finish()


def report(run: RunDir) -> None:
    """Say where everything is (the report was written with the labelling)."""
    if not rank_zero_only.rank == 0:
        return
    labeling = run.labeling()
    lines = [f"run folder: {run}", f"  SAE (SAELens layout): {run.sae}", f"  metrics: {run.metrics_file}"]
    if labeling is not None:  # its report was written with it (label_run_dir)
        lines += [f"  labelling: {labeling.folder}", f"  features: {labeling.features}"]
        if labeling.report.is_file():
            lines.append(f"  report: {run / labeling.REPORT}")
        if labeling.families.is_file():
            lines.append(f"  families: {labeling.families}")
    print("\n".join(lines))
    results = run.results()
    if labeling is not None:
        print("  " + headline_line(results))
    shown = ("fve", "l0", "dead_frac")
    print("  " + ", ".join(f"{k}={results[k]:.4g}" for k in shown if results.get(k) is not None))
    verdicts = [(v, results.get(f"n_{v}")) for v in VERDICTS]
    if any(n is not None for _, n in verdicts):  # labelled runs: how far to trust the labels
        print(
            "  features: "
            + ", ".join(f"{n or 0} {v}" for v, n in verdicts)
            + " (trust the interpretable ones' labels; a mixed feature's texts share little, "
            "a token one's a shared word or word-piece)"
        )
    print(
        "  (fve: share of the embeddings' variance explained, 1 best; l0: active features per text; dead_frac: "
        "share of features that stopped firing; label_quality: how well a label's embedding tells its feature's "
        "texts from the nearest texts it does not fire on, 0.5 chance; docs/concepts.md)"
    )
