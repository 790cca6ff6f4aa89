"""One run, top to bottom: embedding store -> DataModule -> SAE training -> files of the run.

Reads like the data flow in docs/concepts.md; each step is a call into the module that owns it."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only

from .callbacks import RunExport
from .callbacks.run_export import write_json_atomic
from .embed import build_store
from .errors import UserError
from .module import NonFiniteError, SAEModule
from .store import EmbeddingStore

log = logging.getLogger(__name__)


def build_store_from_cfg(cfg: DictConfig) -> EmbeddingStore:
    """The embedding stage: find the store for (domain, embedder) or embed it now."""
    return build_store(instantiate(cfg.domain), instantiate(cfg.embedder), cfg.paths.cache_dir)


def sae_settings(cfg: DictConfig, store: EmbeddingStore) -> dict:
    """The SAE's config: the `sae` group plus what only the store knows (width, model, domain)."""
    sae = OmegaConf.to_container(cfg.sae, resolve=True)
    d_in = sae.pop("d_in", None)
    if d_in is not None and int(d_in) != store.dim:
        raise UserError(f"sae.d_in={d_in} but the embedding store {store.path} is {store.dim} wide; "
                        "drop sae.d_in (it is taken from the store) or use another store")
    sae["d_in"] = store.dim
    sae["metadata"] = {"model_name": store.model_name, "domain": cfg.domain.get("name"),
                       "store_fingerprint": store.fingerprint, "domains": store.manifest.get("domains", [])}
    return sae


def build_module(cfg: DictConfig, store: EmbeddingStore) -> SAEModule:
    try:
        return SAEModule(sae_settings(cfg, store), **OmegaConf.to_container(cfg.module, resolve=True))
    except ValueError as err:  # the SAE config's own checks: k >= d_sae, unknown architecture, ...
        raise UserError(f"sae: {err}") from err


def build_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    callbacks = [instantiate(c) for c in cfg.callbacks.values() if c is not None and "_target_" in c]
    if cfg.labeling.enabled:
        from .callbacks.keybert_labels import KeyBERTLabels

        settings = OmegaConf.to_container(cfg.labeling, resolve=True)
        callbacks.append(KeyBERTLabels(output_dir=cfg.paths.output_dir, **settings))
    callbacks.append(RunExport(cfg.paths.output_dir))  # after the labels, so metrics.json holds them
    return callbacks


def build_loggers(cfg: DictConfig) -> list:
    return [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None and "_target_" in c]


def resolve_ckpt(cfg: DictConfig, out: Path) -> str | None:
    """`ckpt_path=last` means this run folder's last.ckpt; a fresh run never reuses a finished folder."""
    if cfg.ckpt_path is None:
        if (out / "metrics.json").exists() or (out / "checkpoints" / "last.ckpt").exists():
            raise UserError(f"{out} already holds a run; resume it with ckpt_path=last, or start a new folder")
        return None
    path = out / "checkpoints" / "last.ckpt" if cfg.ckpt_path == "last" else Path(cfg.ckpt_path)
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}; pass run_dir=<an earlier run folder> with ckpt_path=last, "
                        "or ckpt_path=<a .ckpt file>")
    return str(path)


def train(cfg: DictConfig) -> float | None:
    """The whole run; returns validation fve (what hparams_search optimises)."""
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    store = build_store_from_cfg(cfg)
    log.info("store ready: %s", store)
    if not cfg.get("train", True):
        return None

    out = Path(cfg.paths.output_dir)
    ckpt_path = resolve_ckpt(cfg, out)
    datamodule = instantiate(cfg.data, store_path=str(store.path))
    module = build_module(cfg, store)
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=build_callbacks(cfg), logger=build_loggers(cfg) or False)
    write_run_json(out, cfg, store)
    for logger in trainer.loggers:  # the whole composed config, so every run is reproducible from W&B
        logger.log_hyperparams({"cfg": OmegaConf.to_container(cfg, resolve=True), "store": store.manifest})

    export_job_for_ddp_children(out)
    env_before = dict(os.environ)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except NonFiniteError as err:
        # The failing step never applied its update, so the weights saved on the way out are finite.
        last = out / "checkpoints" / "last.ckpt"
        kept = f"{last} keeps the last good state" if last.is_file() else "no checkpoint was written before it"
        raise UserError(f"training stopped: {err}; {kept}") from err
    finally:
        finish_loggers(trainer)
        forget_ddp(env_before)
    if trainer.interrupted:
        raise UserError(f"training was interrupted; resume with run_dir={out} ckpt_path=last")
    if cfg.labeling.enabled and cfg.families.enabled and rank_zero_only.rank == 0:
        build_families_from_cfg(cfg, out)
    return report(out)


def build_families_from_cfg(cfg: DictConfig, out: Path) -> None:
    """Feature families after the labels, named with the same labelling settings."""
    from .interpret import LabelingConfig
    from .interpret.families import build_families

    settings = OmegaConf.to_container(cfg.families, resolve=True)
    settings.pop("enabled")
    labeling = LabelingConfig.from_dict(OmegaConf.to_container(cfg.labeling, resolve=True))
    build_families(out, labeling=labeling, **settings)


def export_job_for_ddp_children(out: Path) -> None:
    """Tell DDP ranks started as subprocesses which folder and overrides are this job's (read by
    cli._ddp_child_argv): one output folder per job, also inside a multirun."""
    import json
    import os

    from hydra.core.hydra_config import HydraConfig

    from .config import JOB_DIR_ENV, JOB_OVERRIDES_ENV

    if HydraConfig.initialized() and rank_zero_only.rank == 0:
        os.environ[JOB_DIR_ENV] = str(out)
        os.environ[JOB_OVERRIDES_ENV] = json.dumps(list(HydraConfig.get().overrides.task))


@rank_zero_only
def write_run_json(out: Path, cfg: DictConfig, store: EmbeddingStore) -> None:
    """What `sae-label` and the notebooks need to find the data again without the Hydra config."""
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "run.json", {
        "store_path": str(store.path), "val_fraction": cfg.data.val_fraction, "seed": cfg.seed,
        "domain": cfg.domain.get("name"), "model_name": store.model_name, "architecture": cfg.sae.architecture,
    })


def forget_ddp(env_before: dict[str, str]) -> None:
    """Undo what a DDP fit leaves in this process: Lightning sets LOCAL_RANK, WORLD_SIZE, MASTER_PORT
    ... in os.environ, and the next job of a multirun would then think its ranks were started
    externally and wait for processes that never come."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    for key in set(os.environ) - set(env_before):
        del os.environ[key]
    os.environ.update(env_before)


def finish_loggers(trainer: pl.Trainer) -> None:
    """Close each W&B run, so the next job of a multirun starts a clean one."""
    for logger in trainer.loggers:
        if type(logger).__name__ == "WandbLogger" and logger._experiment is not None:
            logger.experiment.finish()


def report(out: Path) -> float | None:
    """Write report.html (when the features were labelled) and say where everything is."""
    import json

    if not rank_zero_only.rank == 0:
        return None
    metrics = json.loads((out / "metrics.json").read_text())
    lines = [f"run folder: {out}", f"  SAE (SAELens layout): {out / 'sae'}", f"  metrics: {out / 'metrics.json'}"]
    if (out / "features.parquet").exists():
        from .report import write_report

        lines += [f"  features: {out / 'features.parquet'}", f"  report: {write_report(out)}"]
    if (out / "families.parquet").exists():
        lines.append(f"  families: {out / 'families.parquet'}")
    print("\n".join(lines))
    shown = ("fve", "l0", "dead_frac", "label_auroc_mean", "random_auroc_mean", "tfidf_auroc_mean")
    print("  " + ", ".join(f"{k}={metrics[k]:.4g}" for k in shown if metrics.get(k) is not None))
    print("  (fve: share of the embeddings' variance explained, 1 best; l0: active features per text; dead_frac: "
          "share of features that stopped firing; label_auroc: how well a label's embedding finds its feature's "
          "texts, 0.5 chance, beside a random label's and TF-IDF's; docs/concepts.md)")
    return metrics.get("fve")
