"""One source of defaults: every setting of conf/module, conf/data, conf/sae/* and conf/labeling has
the same default in the Python signature that receives it, so a call from Python behaves like the
CLI. Generic on purpose: a setting added to either side is compared without editing this test."""
from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from sae_lightning.config import CONF_DIR
from sae_lightning.data.datamodule import EmbeddingDataModule
from sae_lightning.labels import LabelingConfig
from sae_lightning.models import ARCHITECTURES
from sae_lightning.runtime import RuntimeSettings
from sae_lightning.training.module import SAEModule

from .conftest import compose_cfg

# YAML settings read by something other than the signature compared (with who reads them).
READ_ELSEWHERE = {
    "data": {"_target_"},  # Hydra: which class to build
    "labeling": {"enabled", "every_n_epochs"},  # the labelling callback: whether and when to label
}
NO_DEFAULT = inspect.Parameter.empty


def signature_defaults(target) -> dict:
    if dataclasses.is_dataclass(target):
        out = {}
        for f in dataclasses.fields(target):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
            else:
                out[f.name] = NO_DEFAULT
        return out
    params = inspect.signature(target.__init__).parameters
    return {name: p.default for name, p in params.items() if name != "self"}


def plain(value):
    return [plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def mismatches(group: str, yaml_values: dict, target) -> list[str]:
    python = signature_defaults(target)
    out = []
    for key, value in yaml_values.items():
        if key in READ_ELSEWHERE.get(group, ()):
            continue
        if key not in python:
            out.append(f"{group}.{key}: in the YAML, not a parameter of {target.__name__}")
        elif python[key] is not NO_DEFAULT and plain(python[key]) != plain(value):
            out.append(f"{group}.{key}: YAML {value!r}, {target.__name__} default {python[key]!r}")
    return out


def group_values(overrides: list[str], group: str, tmp_path: Path) -> dict:
    cfg = compose_cfg(overrides, tmp_path, tmp_path)
    return OmegaConf.to_container(cfg[group], resolve=True)


@pytest.mark.parametrize("group, target", [("module", SAEModule), ("data", EmbeddingDataModule),
                                           ("labeling", LabelingConfig), ("runtime", RuntimeSettings)])
def test_yaml_defaults_equal_the_python_signature(group, target, tmp_path):
    assert mismatches(group, group_values([], group, tmp_path), target) == []


@pytest.mark.parametrize("option", sorted(p.stem for p in (CONF_DIR / "sae").glob("*.yaml") if not p.stem.startswith("_")))
def test_every_sae_yaml_equals_the_sae_config_defaults(option, tmp_path):
    values = group_values([f"sae={option}"], "sae", tmp_path)
    assert values["architecture"] == option
    assert mismatches("sae", values, ARCHITECTURES[option].config_class) == []


def test_a_mismatch_is_reported():
    """The comparison itself: a YAML value that differs from the signature is caught."""
    assert mismatches("module", {"lr": 1.0, "nonexistent": 1}, SAEModule) == [
        "module.lr: YAML 1.0, SAEModule default 0.004",
        "module.nonexistent: in the YAML, not a parameter of SAEModule",
    ]
