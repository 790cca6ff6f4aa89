"""The typed schemas (sae_lightning/schemas) are the one home of every default and range of their
groups: each knob says what it is and which values it takes, conf/'s presets restate none of them,
and a config built in Python is refused with the command line's own line (one code path checks both)."""

from __future__ import annotations

import pytest
import yaml

from sae_lightning.errors import UserError
from sae_lightning.hydra_setup import CONF_DIR, group_options
from sae_lightning.schemas import SCHEMA_PREFIX, SCHEMAS, schema_node
from sae_lightning.schemas.domain import WikiConfig
from sae_lightning.schemas.embedder import EmbedderConfig
from sae_lightning.schemas.knobs import knob_paths
from sae_lightning.schemas.labeling import LabelingConfig
from sae_lightning.schemas.runtime import RuntimeSettings
from sae_lightning.schemas.sae import SAEConfig
from sae_lightning.schemas.training import DataConfig, ModuleConfig
from sae_lightning.validate import check_config

from .conftest import compose_cfg

SCHEMA_CLASSES = [(group, choice, cls) for group, choices in SCHEMAS.items() for choice, cls in choices.items()]


@pytest.mark.parametrize(
    "group, choice, cls", SCHEMA_CLASSES, ids=[f"{g}-{c or 'schema'}" for g, c, _ in SCHEMA_CLASSES]
)
def test_every_knob_has_a_meaning_and_its_default_passes_its_rule(group, choice, cls):
    node = flat(schema_node(group, choice))
    for path, f in knob_paths(cls):
        assert f.metadata["doc"].strip(), f"{group}.{path} has no one-line meaning"
        default = node[path]
        value = list(default) if isinstance(default, tuple) else default
        interpolated = isinstance(default, str) and default.startswith("${")  # checked once it resolves
        assert default == "???" or interpolated or f.metadata["rule"].accepts(value), (
            f"{group}.{path}'s default {default!r} breaks its own rule ({f.metadata['rule'].what})"
        )


@pytest.mark.parametrize("group", sorted(g for g, choices in SCHEMAS.items() if len(choices) > 1))
def test_a_knob_of_several_schemas_of_a_group_has_one_rule(group):
    """validate.py keeps one rule per `group.knob`: where two sources (or variants) share a knob,
    its rule must be the same in both."""
    rules: dict[str, set[str]] = {}
    for cls in SCHEMAS[group].values():
        for path, f in knob_paths(cls, filled=True):
            rules.setdefault(path, set()).add(f.metadata["rule"].what)
    assert {k: v for k, v in rules.items() if len(v) > 1} == {}


def flat(node: dict, prefix: str = "") -> dict:
    """A nested node as dotted keys (`wandb.settings.silent`), `_target_` included."""
    out = {}
    for key, value in node.items():
        if isinstance(value, dict) and key != "defaults":
            out |= flat(value, f"{prefix}{key}.")
        else:
            out[prefix + key] = value
    return out


def schema_of(group: str, option: str) -> tuple[str, dict]:
    """The schema entry a preset starts from (directly, or through another preset it names) and the preset."""
    preset = yaml.safe_load((CONF_DIR / group / f"{option}.yaml").read_text()) or {}
    entries = [str(d) for d in preset.get("defaults", []) if str(d) != "_self_"]
    entry = next((d for d in entries if d.startswith(SCHEMA_PREFIX)), None)
    return (entry if entry is not None else schema_of(group, entries[0])[0]), preset


def restated_defaults(group: str, entry: str, preset: dict) -> list[str]:
    """Keys a preset sets to the value its schema already has: a default stated twice."""
    node = flat(schema_node(group, entry[len(SCHEMA_PREFIX) :].lstrip("_")))
    return [f"{group}.{k}" for k, v in flat(preset).items() if k != "defaults" and k in node and node[k] == v]


@pytest.mark.parametrize("group", sorted(SCHEMAS))
def test_presets_start_from_the_schema_and_restate_no_default(group):
    for option in group_options(group):
        if not yaml.safe_load((CONF_DIR / group / f"{option}.yaml").read_text()):
            continue  # a choice of nothing (logger=none)
        entry, preset = schema_of(group, option)  # a preset naming neither fails here (no entries)
        assert restated_defaults(group, entry, preset) == []
        node = flat(schema_node(group, entry[len(SCHEMA_PREFIX) :].lstrip("_")))
        unknown = set(flat(preset)) - {"defaults", "_target_"} - set(node)
        assert not unknown, f"conf/{group}/{option}.yaml sets {unknown}, which its schema does not have"


def test_a_restated_default_is_caught():
    """The comparison itself: a preset that repeats the schema's k is found, an override is not."""
    k = schema_node("sae", "topk")["k"]
    preset = {"defaults": ["_schema_topk"], "k": k, "d_sae": 512}
    assert restated_defaults("sae", "_schema_topk", preset) == ["sae.k"]


@pytest.mark.parametrize(
    "override, build",
    [
        ("module.lr=-1", lambda: ModuleConfig(lr=-1)),
        ("data.shuffle=rows", lambda: DataConfig(shuffle="rows")),
        ("labeling.coherence_min_docs=1", lambda: LabelingConfig(coherence_min_docs=1)),
        ("sae.k=0", lambda: SAEConfig.from_dict({"architecture": "topk", "d_in": 384, "k": 0})),
        ("sae.k=4096", lambda: SAEConfig.from_dict({"architecture": "topk", "d_in": 384, "k": 4096})),
        ("embedder.dtype=int8", lambda: EmbedderConfig(dtype="int8")),
        ("runtime.torch_threads=0", lambda: RuntimeSettings(torch_threads=0)),
        ("domain.limit=0", lambda: WikiConfig(name="wiki_all", topics=["Arts"], limit=0)),
        ("domain.topics=[Astrology]", lambda: WikiConfig(name="wiki_all", topics=["Astrology"])),
        ("domain.topics=[]", lambda: WikiConfig(name="wiki_all", topics=[])),
        ("domain.unit=paragraph", lambda: WikiConfig(name="wiki_all", topics=["Arts"], unit="paragraph")),
    ],
)
def test_python_and_the_command_line_refuse_with_the_same_line(override, build, tmp_path):
    with pytest.raises(UserError) as cli:
        check_config(compose_cfg([override], tmp_path, tmp_path))
    with pytest.raises(UserError) as python:
        build()
    assert str(python.value) == str(cli.value)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["domain=npy", "domain.path=x.npy", "domain.limit=0"], "domain.limit=0 is invalid; set domain.limit to"),
        (["domain=files", "domain.path=x.csv", "domain.text_column=''"], "domain.text_column= is invalid"),
        (["trainer.accelerator=quantum"], "trainer.accelerator=quantum is invalid; set trainer.accelerator to one of"),
        (["callbacks.periodic_checkpoint.every_n_seconds=0"], "callbacks.periodic_checkpoint.every_n_seconds=0"),
        (["logger=wandb", "logger.wandb.settings.console=loud"], "logger.wandb.settings.console=loud is invalid"),
        (["logger=csv", "logger.csv.name=''"], "logger.csv.name= is invalid; set logger.csv.name to a"),
        (["paths.log_dir=''"], "paths.log_dir= is invalid; set paths.log_dir to a non-empty string"),
    ],
)
def test_a_bad_value_of_every_group_is_one_line_from_its_schema(overrides, message, tmp_path):
    with pytest.raises(UserError) as err:
        check_config(compose_cfg(overrides, tmp_path, tmp_path))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_other_arguments_of_lightnings_classes_pass_with_plus(tmp_path):
    """The Trainer's, a checkpoint callback's (ours pass them on to ModelCheckpoint) and a logger's
    arguments the schemas do not hold reach the class as given; one the class does not take is refused."""
    cfg = compose_cfg(
        [
            "+trainer.limit_train_batches=5",
            "+callbacks.model_checkpoint.save_on_exception=true",
            "+callbacks.periodic_checkpoint.save_on_exception=true",  # ours, but ModelCheckpoint's arguments
            "logger=csv",
            "+logger.csv.flush_logs_every_n_steps=50",
        ],
        tmp_path,
        tmp_path,
    )
    check_config(cfg)
    assert cfg.trainer.limit_train_batches == 5 and cfg.callbacks.model_checkpoint.save_on_exception is True
    assert cfg.callbacks.periodic_checkpoint.save_on_exception is True
    says = r"^callbacks.periodic_checkpoint.save_every is not an argument of sae_lightning.training.callbacks.Periodic"
    with pytest.raises(UserError, match=says):
        check_config(compose_cfg(["+callbacks.periodic_checkpoint.save_every=3"], tmp_path, tmp_path))


def test_a_callback_set_to_null_is_dropped(tmp_path):
    """`callbacks.<name>=null` drops that callback (CallbacksConfig's docstring), checked and built;
    the epoch checkpoint then writes every epoch (its interval follows the periodic one's)."""
    from sae_lightning.pipeline import build_callbacks
    from sae_lightning.run_dir import RunDir
    from sae_lightning.training.callbacks import EpochCheckpoint, PeriodicCheckpoint
    from sae_lightning.training.interrupts import DeferredSignals

    cfg = compose_cfg(["callbacks.periodic_checkpoint=null"], tmp_path, tmp_path)
    check_config(cfg)
    assert cfg.callbacks.model_checkpoint.min_interval_seconds is None
    built = build_callbacks(cfg, RunDir(tmp_path), DeferredSignals())
    assert any(isinstance(c, EpochCheckpoint) for c in built)
    assert not any(isinstance(c, PeriodicCheckpoint) for c in built)
