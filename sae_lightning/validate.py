"""Every config value checked before any work: one rule per knob (type, range, choices), plus a few
rules that tie two knobs together. Every config group has a schema (sae_lightning/schemas) and
brings its rules with its fields; the commands' top-level keys and sae-diff's options are here.

`check_config(cfg)` raises one UserError naming the first bad value and what it must be. Values are
resolved first, so `data.seed=${seed}` is checked as the number it becomes. Keys without a rule
are left alone here; tests/test_validation.py fails when a knob under conf/ has none."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import UserError
from .foreign_targets import added_object_problem, arguments_of
from .schemas import schema_rules, schema_targets
from .schemas.domain import HFConfig, hf_problem
from .schemas.knobs import POSITIVE, SEED, Rule, flag, folder_name, invalid, number, required, text, threads, whole
from .schemas.labeling import labeling_problem
from .schemas.lightning import EpochCheckpointConfig, PeriodicCheckpointConfig, nodes_problem, precision_problem
from .schemas.sae import tied_problem
from .schemas.training import module_problem

RULES: dict[str, Rule] = {
    # conf/config.yaml, conf/label.yaml
    "task_name": folder_name(),
    "seed": SEED,
    "ckpt_path": text(null=True),
    "run_dir": text(null=True, example="<a finished run folder>"),
    "train": flag(),
    "report": flag(),
    # sae-diff's options (conf/diff.yaml; diff/cli.py checks them with check_settings("diff", ...))
    "diff.alpha": number(0, 1, lo_open=True, hi_open=True),
    "diff.min_log_odds": number(0),
    "diff.min_texts": POSITIVE,
    # texts shown per feature and group; the scan keeps d_sae x examples of them in memory at once
    # (100,000 examples at d_sae 3072 filled 24 GiB), and a page shows a handful
    "diff.examples": whole(0, 100),
    "diff.batch_size": POSITIVE,
    "diff.top": POSITIVE,
    "diff.seed": SEED,
    # sae-compare's options (conf/compare.yaml; compare_runs checks them with check_settings("compare", ...))
    "compare.threshold": number(0, 1, lo_open=True),
    "compare.shared_fraction": number(0, 1, lo_open=True),
    "compare.min_share": number(0, 1, lo_open=True),
    "compare.specific_share": number(0, 1, lo_open=True),
    # sae-serve's settings (conf/serve.yaml; serve/settings.py checks them with check_settings("serve", ...))
    "serve.host": text(),
    "serve.port": whole(0, 65535),
    "serve.compute_workers": threads(0),
    "serve.torch_threads": threads(),
    "serve.embed_cache": whole(0),
    "serve.index_max_mib": whole(0),
    # every config group under conf/ (sae, module, data, labeling, embedder, runtime, families,
    # domain, trainer, callbacks, logger, paths): from their schemas' fields
    **schema_rules(),
}


# Ours, but Lightning's ModelCheckpoint underneath (a method or two changed, **kwargs passed on): the
# arguments a user adds are Lightning's to check.
LIGHTNING_SUBCLASSES = (EpochCheckpointConfig.TARGET, PeriodicCheckpointConfig.TARGET)
# The classes the shipped configs build; any other `_target_` was added with `+` (a callback).
KNOWN_TARGETS = frozenset(str(t) for t in schema_targets())
# Groups whose entries `<group>.<name>=null` drops (CallbacksConfig: the pipeline builds the others).
DROPPABLE = ("callbacks",)


def _foreign_target(cfg: DictConfig, key: str) -> tuple[str, str] | None:
    """(the class, the argument) where `key` is an argument of an object another library builds (a
    Lightning callback, logger or trainer argument the user adds with `+`), else None. Our own
    objects' and groups' keys all have rules, so a key of theirs without one is a typo."""
    parts = key.split(".")
    for end in range(len(parts) - 1, 0, -1):
        target = OmegaConf.select(cfg, ".".join(parts[:end]) + "._target_", default=None)
        if target is not None:
            foreign = not str(target).startswith("sae_lightning.") or str(target) in LIGHTNING_SUBCLASSES
            return (str(target), parts[end]) if foreign else None
    return None


def unknown_key(cfg: DictConfig, key: str) -> str | None:
    """The one line for a key no rule knows (`+sae.kk=3`) or that the class it is passed to does not
    take (`+trainer.max_epoch=3`, a TypeError traceback after the store step), or None where its
    library takes it."""
    foreign = _foreign_target(cfg, key)
    if foreign is not None:
        target, name = foreign
        accepted = arguments_of(target)
        if accepted is None or name in accepted:
            return None
        return f"{key} is not an argument of {target}; check its spelling against that class's, or drop it"
    group = key.rpartition(".")[0]
    known = sorted(k.rpartition(".")[2] for k in RULES if k.rpartition(".")[0] == group and k in leaf_keys(cfg))
    where = (
        f"the {group or 'top-level'} settings are: {', '.join(known)}"
        if known
        else "the docs' Config knobs page lists every setting"
    )
    return f"{key} is not a setting ({where}); check its spelling, or drop it"


def _get(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=None)


def _tied_rules(cfg: DictConfig) -> str | None:
    """Rules over two knobs, each checked only where both are present."""
    sae = _get(cfg, "sae")
    problem = tied_problem(OmegaConf.to_container(sae, resolve=True)) if sae is not None else None
    if problem:
        return problem
    if _get(cfg, "trainer") is not None:
        trainer = {key: _get(cfg, f"trainer.{key}") for key in ("precision", "accelerator")}
        problem = precision_problem(trainer, _get(cfg, "sae.architecture")) or nodes_problem(
            _get(cfg, "trainer.num_nodes"), _get(cfg, "trainer.plugins")
        )
        if problem:
            return problem
    module = _get(cfg, "module")
    problem = module_problem(OmegaConf.to_container(module, resolve=True)) if module is not None else None
    if problem:
        return problem
    labeling = _get(cfg, "labeling")
    problem = (
        labeling_problem(OmegaConf.to_container(labeling, resolve=True), _get(cfg, "sae.d_sae"))
        if labeling is not None
        else None
    )
    if problem:
        return problem
    domain = _get(cfg, "domain")
    if domain is not None and domain.get("_target_") == HFConfig.TARGET:
        return hf_problem(_get(cfg, "domain.name"), _get(cfg, "domain.path"))
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


def check_settings(group: str, values: dict[str, Any], flags: bool = False) -> None:
    """The same rules for settings built in Python (LabelingConfig(...), the API) or given as a
    plain command's flags (sae-diff's --alpha: flags=True names them so): one UserError for the
    first value its rule refuses; names without a rule are left alone."""
    for name, value in values.items():
        key = f"{group}.{name}"
        rule = RULES.get(key)
        if rule is not None and not rule.accepts(list(value) if isinstance(value, tuple) else value):
            raise UserError(invalid(f"--{name.replace('_', '-')}" if flags else key, value, rule))


def check_config(cfg: DictConfig, skip: tuple[str, ...] = ()) -> None:
    """Raise UserError for the first value no rule accepts (all keys of cfg, resolved)."""
    for key in leaf_keys(cfg):
        if key in skip:
            continue
        parent, _, name = key.rpartition(".")
        rule = RULES.get(key)
        if OmegaConf.is_missing(OmegaConf.select(cfg, parent) if parent else cfg, name):
            raise UserError(required(key, rule))
        try:
            value = OmegaConf.select(cfg, key, throw_on_resolution_failure=True)
        except OmegaConfBaseException as err:
            raise UserError(f"{key} cannot be resolved: {str(err).splitlines()[0]}; fix the interpolation") from None
        if isinstance(value, (DictConfig, ListConfig)):
            value = OmegaConf.to_container(value, resolve=True)
        if value is None and parent in DROPPABLE:
            continue  # a callback dropped with callbacks.<name>=null
        if rule is None and (problem := unknown_key(cfg, key)):
            raise UserError(problem)
        if rule is not None and not rule.accepts(value):
            raise UserError(invalid(key, value, rule))
    problem = _tied_rules(cfg) or added_object_problem(cfg, KNOWN_TARGETS)
    if problem:
        raise UserError(problem)
