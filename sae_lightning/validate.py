"""Every config value checked before any work: one rule per knob (type, range, choices), so a new
knob under conf/ is one line here, plus a few rules that tie two knobs together.

`check_config(cfg)` raises one UserError naming the first bad value and what it must be. Values are
resolved first, so `data.seed=${seed}` is checked as the number it becomes. Keys without a rule
are left alone here; tests/test_validation.py fails when a knob under conf/ has none."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .data.sources import WIKI_TOPICS
from .data.sources.wiki import UNITS
from .errors import UserError


@dataclass(frozen=True)
class Rule:
    what: str  # what a valid value is, as the error message says it
    ok: Callable[[Any], bool]
    null: bool = False  # null allowed
    example: str | None = None  # shown when the value is missing (???)

    def accepts(self, value: Any) -> bool:
        return self.null if value is None else self.ok(value)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _or_null(what: str, null: bool) -> str:
    return f"{what}, or null" if null else what


def whole(lo: int | None = None, hi: int | None = None, null: bool = False) -> Rule:
    bounds = (f" from {lo} to {hi}" if hi is not None else f" >= {lo}") if lo is not None else ""
    return Rule(_or_null(f"a whole number{bounds}", null),
                lambda v: _is_int(v) and (lo is None or v >= lo) and (hi is None or v <= hi), null)


def number(lo: float | None = None, hi: float | None = None, lo_open: bool = False, hi_open: bool = False,
           null: bool = False) -> Rule:
    parts = [f"{'>' if lo_open else '>='} {lo}" if lo is not None else "",
             f"{'<' if hi_open else '<='} {hi}" if hi is not None else ""]
    bounds = " and ".join(p for p in parts if p)

    def ok(v: Any) -> bool:
        return _is_num(v) and (lo is None or (v > lo if lo_open else v >= lo)) and (
            hi is None or (v < hi if hi_open else v <= hi))

    return Rule(_or_null(f"a finite number{' ' + bounds if bounds else ''}", null), ok, null)


def flag(null: bool = False, also: tuple[str, ...] = ()) -> Rule:
    extra = "".join(f" or {a}" for a in also)
    return Rule(_or_null(f"true or false{extra}", null), lambda v: isinstance(v, bool) or v in also, null)


def one_of(*choices: str, null: bool = False) -> Rule:
    return Rule(_or_null("one of " + " | ".join(choices), null), lambda v: v in choices, null)


def text(null: bool = False, example: str | None = None) -> Rule:
    # Hydra reads `name=2024` as an int; a name made of digits is still a name.
    return Rule(_or_null("a non-empty string", null),
                lambda v: isinstance(v, (str, int, float)) and not isinstance(v, bool) and str(v).strip() != "",
                null, example)


def folder_name(null: bool = False) -> Rule:
    # A name that becomes one folder under the outputs: no path separators, never hidden or `..`.
    return Rule(_or_null("a plain folder name (letters, digits, _ - . ; not starting with . ; no /)", null),
                lambda v: isinstance(v, (str, int)) and not isinstance(v, bool)
                and re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}", str(v)) is not None, null)


def list_of(item: Rule, what: str, check: Callable[[list], bool] = lambda v: True, null: bool = False) -> Rule:
    return Rule(_or_null(what, null), lambda v: isinstance(v, list) and all(item.accepts(x) for x in v) and check(v),
                null)


def _devices(v: Any) -> bool:
    if _is_int(v):
        return v >= 1 or v == -1
    if isinstance(v, str):
        return v == "auto" or re.fullmatch(r"\d+(,\d+)*,?", v) is not None
    return isinstance(v, list) and len(v) > 0 and all(_is_int(x) and x >= 0 for x in v)


FRACTION_OPEN_TOP = number(0, 1, hi_open=True)
POSITIVE = whole(1)
SEED = whole(0, 2**32 - 1)
PATH = text(example="<a folder>")

RULES: dict[str, Rule] = {
    # conf/config.yaml, conf/label.yaml
    "task_name": folder_name(),
    "seed": SEED,
    "ckpt_path": text(null=True),
    "run_dir": text(null=True, example="<a finished run folder>"),
    "train": flag(),
    "report": flag(),
    # conf/paths
    "paths.cache_dir": PATH, "paths.log_dir": PATH, "paths.output_dir": PATH,
    # conf/domain (every source)
    "domain.name": text(null=True),
    "domain.topics": list_of(one_of(*WIKI_TOPICS.values()), "a non-empty list of topics among "
                             + ", ".join(WIKI_TOPICS.values()), check=lambda v: len(v) > 0),
    "domain.unit": one_of(*UNITS),
    "domain.limit": whole(1, null=True),
    "domain.min_words": whole(1),
    "domain.seed": SEED,
    "domain.path": text(null=True, example="<a file or folder>"),
    "domain.text_column": text(),
    "domain.domain_column": text(null=True),
    "domain.domain": text(null=True),
    "domain.id_column": text(null=True),
    "domain.subset": text(null=True),
    "domain.split": text(),
    "domain.metadata": text(null=True),
    "domain.model_name": text(),
    # conf/embedder
    "embedder.model": text(),
    "embedder.batch_size": POSITIVE,
    "embedder.normalize": flag(),
    "embedder.dtype": one_of("float32", "float16"),
    "embedder.max_seq_length": whole(1, null=True),
    "embedder.shard_size": POSITIVE,
    "embedder.device": Rule("cpu, cuda, cuda:N or mps, or null",
                            lambda v: isinstance(v, str) and re.fullmatch(r"cpu|cuda(:\d+)?|mps", v) is not None, True),
    "embedder.show_progress": flag(),
    "embedder.dtype_compute": one_of("auto", "float32", "bfloat16", "float16"),
    "embedder.devices": Rule("a list of cpu / cuda:N devices such as [cuda:0, cuda:1], or null",
                             lambda v: isinstance(v, (list, ListConfig)) and len(v) > 0 and all(
                                 isinstance(d, str) and re.fullmatch(r"cpu|cuda(:\d+)?|mps", d) for d in v), True),
    # conf/data
    "data.batch_size": POSITIVE,
    "data.val_batch_size": POSITIVE,
    "data.val_fraction": FRACTION_OPEN_TOP,
    "data.seed": SEED,
    "data.num_workers": whole(0),
    "data.in_memory": flag(),
    "data.drop_last": flag(),
    "data.shuffle": one_of("auto", "full", "blocks"),
    "data.block_rows": POSITIVE,
    "data.window_blocks": POSITIVE,
    # conf/sae
    "sae.architecture": one_of("relu", "topk", "batchtopk", "jumprelu", "matryoshka"),
    "sae.d_in": whole(1, null=True),
    "sae.d_sae": POSITIVE,
    "sae.dead_after_samples": POSITIVE,
    "sae.k": POSITIVE,
    "sae.aux_k": whole(1, null=True),
    "sae.aux_coefficient": number(0),
    "sae.select_dtype": one_of("float32", "bfloat16"),
    "sae.initial_threshold": number(0, lo_open=True),
    "sae.bandwidth": number(0, lo_open=True),
    "sae.l0_coefficient": number(0),
    "sae.l1_coefficient": number(0),
    "sae.l1_warmup_steps": whole(0),
    "sae.matryoshka_base": one_of("topk", "batchtopk"),
    "sae.threshold_decay": number(0, 1, lo_open=True, hi_open=True),
    "sae.matryoshka_prefixes": list_of(POSITIVE, "an increasing list of dictionary sizes ending at sae.d_sae",
                                       check=lambda v: len(v) > 0 and all(a < b for a, b in zip(v, v[1:])), null=True),
    # conf/module
    "module.lr": number(0, lo_open=True),
    "module.betas": list_of(number(0, 1, hi_open=True), "two numbers in [0, 1), e.g. [0.9, 0.999]",
                            check=lambda v: len(v) == 2),
    "module.warmup_steps": whole(0),
    "module.decay": one_of("none", "cosine", "linear"),
    "module.decay_fraction": number(0, 1),
    "module.retrieval_k": POSITIVE,
    "module.init_b_dec": one_of("geometric_median", "mean"),
    "module.init_sample_size": POSITIVE,
    "module.retrieval_queries": POSITIVE,
    "module.max_weight_rms": number(0, lo_open=True, null=True),
    # conf/runtime
    "runtime.keep_freed_mib": whole(0),
    "runtime.fill_uninitialized_memory": flag(),
    "runtime.torch_threads": whole(1, null=True),
    "runtime.small_op_threads": whole(1, null=True),
    "runtime.omp_wait_policy": one_of("passive", "active", null=True),
    # conf/trainer
    "trainer.default_root_dir": PATH,
    "trainer.accelerator": one_of("cpu", "gpu", "cuda", "mps", "tpu", "auto"),
    "trainer.devices": Rule("a number of devices >= 1, -1 (all), auto, or a list of device ids", _devices),
    "trainer.num_nodes": POSITIVE,
    "trainer.strategy": text(),
    "trainer.plugins": Rule("a list of plugin configs, each with a _target_ (see conf/trainer/slurm.yaml)",
                            lambda v: isinstance(v, list) and all(isinstance(p, dict) and "_target_" in p for p in v)),
    "trainer.max_epochs": POSITIVE,
    "trainer.check_val_every_n_epoch": whole(1, null=True),
    "trainer.log_every_n_steps": POSITIVE,
    "trainer.gradient_clip_val": number(0, null=True),
    "trainer.deterministic": flag(also=("warn",)),
    "trainer.sync_batchnorm": flag(),
    "trainer.use_distributed_sampler": flag(),
    "trainer.enable_model_summary": flag(),
    "trainer.num_sanity_val_steps": whole(-1),
    "trainer.enable_progress_bar": flag(),
    # conf/logger
    "logger.wandb.project": text(), "logger.wandb.name": text(), "logger.wandb.save_dir": PATH,
    "logger.wandb.offline": flag(), "logger.wandb.log_model": flag(also=("all",)), "logger.wandb.group": text(),
    "logger.wandb.tags": list_of(text(), "a list of strings"),
    "logger.wandb.settings.silent": flag(), "logger.wandb.settings.console": one_of("off", "auto", "wrap", "redirect", "wrap_raw", "wrap_emu"),
    "logger.csv.save_dir": PATH, "logger.csv.name": text(),
    # conf/callbacks
    "callbacks.model_checkpoint.dirpath": PATH,
    "callbacks.model_checkpoint.save_last": flag(also=("link",)),
    "callbacks.model_checkpoint.save_top_k": whole(-1),
    "callbacks.model_checkpoint.every_n_epochs": whole(0, null=True),
    "callbacks.model_checkpoint.save_on_exception": flag(),
    "callbacks.model_checkpoint.enable_version_counter": flag(),
    "callbacks.periodic_checkpoint.dirpath": PATH,
    "callbacks.periodic_checkpoint.save_last": flag(also=("link",)),
    "callbacks.periodic_checkpoint.save_top_k": whole(-1),
    "callbacks.periodic_checkpoint.every_n_train_steps": whole(0, null=True),
    "callbacks.periodic_checkpoint.every_n_seconds": number(0, lo_open=True, null=True),
    "callbacks.periodic_checkpoint.enable_version_counter": flag(),
    "callbacks.dead_features.dense_threshold": number(0, 1, lo_open=True),
    # conf/labeling
    "labeling.enabled": flag(),
    "labeling.every_n_epochs": whole(0),
    "labeling.m": POSITIVE,
    "labeling.top_n": POSITIVE,
    "labeling.use_mmr": flag(),
    "labeling.shortlist": POSITIVE,
    "labeling.evidence_power": number(0),
    "labeling.keyword_min_relevance": number(0, 1),
    "labeling.concept_contrast": number(0),
    "labeling.diversity": number(0, 1),
    "labeling.ngram_range": list_of(POSITIVE, "[lo, hi] with 1 <= lo <= hi, e.g. [1, 2]",
                                    check=lambda v: len(v) == 2 and v[0] <= v[1]),
    "labeling.stop_words": Rule("english, a list of words, or null",
                                lambda v: v == "english" or (isinstance(v, list) and all(isinstance(w, str) for w in v)),
                                True),
    "labeling.min_df": POSITIVE,
    "labeling.min_texts": POSITIVE,
    "labeling.max_features": whole(1, null=True),
    "labeling.doc_embedding": one_of("decoder", "mean", "concat"),
    "labeling.label_embedding": one_of("keywords", "string"),
    "labeling.m_pos": POSITIVE,
    "labeling.n_negatives": POSITIVE,
    "labeling.seed": SEED,
    "labeling.batch_size": POSITIVE,
    "labeling.distinct_documents": flag(),
    "labeling.activation_weights": flag(),
    "labeling.numbers_min_share": number(0, 1),
    "labeling.n_hard": POSITIVE,
    "labeling.coherence_min_docs": whole(2),
    "labeling.coherence_pairs": POSITIVE,
    "labeling.coherence_min": number(),
    "labeling.token_share_gap": number(0, 1),
    "labeling.small_op_threads": whole(1, null=True),
    "labeling.judge_model": text(null=True, example="all-mpnet-base-v2"),
    # conf/families
    "families.enabled": flag(),
    "families.min_weight": number(0, 1),
    "families.min_children": POSITIVE,
    "families.min_cooccur": POSITIVE,
    "families.max_density": number(0, 1, lo_open=True),
    "families.texts_per_member": POSITIVE,
    # sae-diff's options (conf/diff.yaml; diff/cli.py checks them with check_settings("diff", ...))
    "diff.alpha": number(0, 1, lo_open=True, hi_open=True),
    "diff.min_log_odds": number(0),
    "diff.min_texts": POSITIVE,
    "diff.examples": whole(0),
    "diff.batch_size": POSITIVE,
    "diff.top": POSITIVE,
    "diff.seed": SEED,
}


def _foreign_argument(cfg: DictConfig, key: str) -> bool:
    """An argument of an object another library builds (a Lightning callback, logger or trainer
    argument the user adds with `+`): that library checks its own arguments. Our own objects'
    and groups' keys all have rules, so a key of theirs without one is a typo."""
    parts = key.split(".")
    for end in range(len(parts) - 1, 0, -1):
        target = OmegaConf.select(cfg, ".".join(parts[:end]) + "._target_", default=None)
        if target is not None:
            return not str(target).startswith("sae_lightning.")
    return False


def unknown_key(cfg: DictConfig, key: str) -> str | None:
    """The one line for a key no rule knows (`+sae.kk=3`), or None for a foreign argument."""
    if _foreign_argument(cfg, key):
        return None
    group = key.rpartition(".")[0]
    known = sorted(k.rpartition(".")[2] for k in RULES if k.rpartition(".")[0] == group and k in leaf_keys(cfg))
    where = f"the {group} settings are: {', '.join(known)}" if known else "the docs' Config knobs page lists every setting"
    return f"{key} is not a setting ({where}); check its spelling, or drop it"


def _get(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=None)


def _tied_rules(cfg: DictConfig) -> str | None:
    """Rules over two knobs, each checked only where both are present."""
    k, d_sae = _get(cfg, "sae.k"), _get(cfg, "sae.d_sae")
    if k is not None and d_sae is not None and k >= d_sae:
        return f"sae.k={k} must be below sae.d_sae={d_sae}; lower sae.k or raise sae.d_sae"
    prefixes = _get(cfg, "sae.matryoshka_prefixes")
    if prefixes is not None and prefixes[-1] != d_sae:
        return f"sae.matryoshka_prefixes={prefixes} must end at sae.d_sae={d_sae}; make the last size {d_sae}"
    domain = _get(cfg, "domain")
    if domain is not None and str(domain.get("_target_", "")).endswith("HFDataset") and not (
            _get(cfg, "domain.name") or _get(cfg, "domain.path")):
        return "domain=hf needs domain.name=<hub id> or domain.path=<a save_to_disk folder>"
    return None


def leaf_keys(node: DictConfig, prefix: str = "") -> list[str]:
    """Dotted keys of every value (not of the groups holding them); `_target_` and hydra are not knobs."""
    keys = []
    for name in node.keys():
        key = f"{prefix}{name}"
        if name == "_target_" or key == "hydra":
            continue
        child = node._get_node(name)
        keys += leaf_keys(child, key + ".") if isinstance(child, DictConfig) and not child._is_none() else [key]
    return keys


def _shown(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def check_settings(group: str, values: dict[str, Any], flags: bool = False) -> None:
    """The same rules for settings built in Python (LabelingConfig(...), the API) or given as a
    plain command's flags (sae-diff's --alpha: flags=True names them so): one UserError for the
    first value its rule refuses; names without a rule are left alone."""
    for name, value in values.items():
        key = f"{group}.{name}"
        rule = RULES.get(key)
        if rule is not None and not rule.accepts(list(value) if isinstance(value, tuple) else value):
            shown = f"--{name.replace('_', '-')}" if flags else key
            raise UserError(f"{shown}={_shown(value)} is invalid; set {shown} to {rule.what}")


def check_config(cfg: DictConfig, skip: tuple[str, ...] = ()) -> None:
    """Raise UserError for the first value no rule accepts (all keys of cfg, resolved)."""
    for key in leaf_keys(cfg):
        if key in skip:
            continue
        parent, _, name = key.rpartition(".")
        rule = RULES.get(key)
        if OmegaConf.is_missing(OmegaConf.select(cfg, parent) if parent else cfg, name):
            example = rule.example if rule and rule.example else "..."
            raise UserError(f"{key} is required: pass {key}={example}")
        try:
            value = OmegaConf.select(cfg, key, throw_on_resolution_failure=True)
        except OmegaConfBaseException as err:
            raise UserError(f"{key} cannot be resolved: {str(err).splitlines()[0]}; fix the interpolation") from None
        if isinstance(value, (DictConfig, ListConfig)):
            value = OmegaConf.to_container(value, resolve=True)
        if rule is None and (problem := unknown_key(cfg, key)):
            raise UserError(problem)
        if rule is not None and not rule.accepts(value):
            raise UserError(f"{key}={_shown(value)} is invalid; set {key} to {rule.what}")
    problem = _tied_rules(cfg)
    if problem:
        raise UserError(problem)
