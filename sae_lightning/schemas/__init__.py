"""The typed configs: one dataclass per config group (per variant for `sae`), each field holding its
default, type, meaning and range (knobs.py). They are stored in Hydra's ConfigStore as
`<group>/_schema` (`sae/_schema_<variant>`), and the YAML file of each choice under conf/ is a
preset that starts from it (`defaults: [_schema]`), so a default is stated once, here. validate.py
takes their rules, docs/gen_config_reference.py their docs, and the library's objects the instances.
Groups of several schemas (`sae`, `domain`, `logger`) store one per choice, `<group>/_schema_<choice>`.

The top-level keys of each command's config (seed, run_dir, ...) and sae-diff's options keep
their rules in validate.py; `hydra` is Hydra's own."""

from __future__ import annotations

from typing import Any

from .domain import DOMAIN_CONFIGS
from .embedder import EmbedderConfig
from .families import FamiliesConfig
from .knobs import Rule, defaults_of, knob_paths
from .labeling import LabelingConfig
from .lightning import LOGGER_CONFIGS, CallbacksConfig, PathsConfig, TrainerConfig
from .runtime import RuntimeSettings
from .sae import SAE_CONFIGS
from .training import DataConfig, ModuleConfig

# group -> {choice: schema}; a group with one schema has the choice "" (stored as `_schema`).
SCHEMAS: dict[str, dict[str, type]] = {
    "sae": SAE_CONFIGS,
    "module": {"": ModuleConfig},
    "data": {"": DataConfig},
    "labeling": {"": LabelingConfig},
    "embedder": {"": EmbedderConfig},
    "runtime": {"": RuntimeSettings},
    "families": {"": FamiliesConfig},
    "domain": DOMAIN_CONFIGS,
    "trainer": {"": TrainerConfig},
    "callbacks": {"": CallbacksConfig},
    "logger": LOGGER_CONFIGS,
    "paths": {"": PathsConfig},
}


SCHEMA_PREFIX = "_schema"  # a leading _: not a choice of the group, as conf/'s _ files are not


def schema_name(choice: str) -> str:
    """The ConfigStore name of a group's schema: `_schema`, or `_schema_<choice>` in a group of several."""
    return f"{SCHEMA_PREFIX}_{choice}" if choice else SCHEMA_PREFIX


def schema_node(group: str, choice: str) -> dict[str, Any]:
    node = defaults_of(SCHEMAS[group][choice])
    return {**node, "architecture": choice} if group == "sae" else node


def register() -> None:
    """Store every schema in Hydra's ConfigStore, once per process, before any composition. The node
    stored is the schema's defaults, untyped: OmegaConf's own type check would refuse a bad value
    in its multi-line wording before validate.py's one-line rules (generated from the same fields)
    could name the knob and the fix, and would turn `yes` into true."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for group, choices in SCHEMAS.items():
        for choice in choices:
            store.store(group=group, name=schema_name(choice), node=schema_node(group, choice))


def schema_rules() -> dict[str, Rule]:
    """`group.knob` -> its rule, for every field with one (the filled ones such as sae.d_in too, the
    sections' as `logger.wandb.settings.silent`). A knob several schemas of a group share has one
    rule (tests/test_schemas.py), so the first schema's stands for all."""
    rules: dict[str, Rule] = {}
    for group, choices in SCHEMAS.items():
        for cls in choices.values():
            for path, f in knob_paths(cls, filled=True):
                rules.setdefault(f"{group}.{path}", f.metadata["rule"])
    return rules


def schema_targets() -> set[str]:
    """The `_target_` of every schema and section: the classes the shipped configs build."""
    from dataclasses import fields

    found: set[str] = set()

    def visit(cls: type) -> None:
        if getattr(cls, "TARGET", None):
            found.add(cls.TARGET)
        for f in fields(cls):
            if "section" in f.metadata:
                visit(f.metadata["section"])

    for choices in SCHEMAS.values():
        for cls in choices.values():
            visit(cls)
    return found
