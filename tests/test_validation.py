"""Bad values and corrupt files end in one line naming the problem and the fix, exit status 2,
before any work and with nothing written (validate.py, cli.py, the load paths)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from sae_lightning.cli import _own_error
from sae_lightning.data.store import EmbeddingStore
from sae_lightning.errors import UserError
from sae_lightning.hydra_setup import CONF_DIR, group_options
from sae_lightning.label_run import label_run_dir
from sae_lightning.models import SparseAutoencoder, build_sae, sae_config
from sae_lightning.run_dir import RunDir
from sae_lightning.search import open_run
from sae_lightning.validate import RULES, check_config, leaf_keys

from .cli_runner import run_script
from .conftest import compose_cfg
from .helpers import write_labelled_run

# (override, what the one line must say): every value the issue lists, and one per kind of rule.
BAD_VALUES = [
    ("module.lr=-1", "module.lr=-1 is invalid; set module.lr to a finite number > 0"),
    ("module.lr=nan", "module.lr=nan is invalid; set module.lr to a finite number > 0"),
    ("data.batch_size=0", "data.batch_size=0 is invalid; set data.batch_size to a whole number >= 1"),
    (
        "data.val_fraction=1.0",
        "data.val_fraction=1.0 is invalid; set data.val_fraction to a finite number >= 0 and < 1",
    ),
    ("domain.limit=abc", "domain.limit=abc is invalid; set domain.limit to a whole number >= 1, or null"),
    ("labeling.top_n=0", "labeling.top_n=0 is invalid; set labeling.top_n to a whole number >= 1"),
    ("trainer.max_epochs=-1", "trainer.max_epochs=-1 is invalid; set trainer.max_epochs to a whole number >= 1"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0 is invalid; set trainer.max_epochs to a whole number >= 1"),
    ("seed=-1", "seed=-1 is invalid; set seed to a whole number from 0 to 4294967295"),
    ("data.num_workers=-1", "data.num_workers=-1 is invalid; set data.num_workers to a whole number from 0 to 1024"),
    ("embedder.dtype=int8", "embedder.dtype=int8 is invalid; set embedder.dtype to one of float32 | float16"),
    ("data.shuffle=foo", "data.shuffle=foo is invalid; set data.shuffle to one of auto | full | blocks"),
    ("domain.unit=paragraph", "domain.unit=paragraph is invalid; set domain.unit to one of sentence | article"),
    ("data.in_memory=yes", "data.in_memory=yes is invalid; set data.in_memory to true or false"),
    ("domain.limit=2.5", "domain.limit=2.5 is invalid"),
    ("module.betas=[0.9]", "module.betas=[0.9] is invalid; set module.betas to two numbers in [0, 1)"),
    ("labeling.ngram_range=[2,1]", "labeling.ngram_range=[2, 1] is invalid"),
    (
        "domain.topics=[Cooking]",
        "domain.topics=['Cooking'] is invalid; set domain.topics to a non-empty list of topics",
    ),
    ("trainer.devices=0", "trainer.devices=0 is invalid"),
    ("embedder.device=gpu7", "embedder.device=gpu7 is invalid; set embedder.device to cpu, cuda, cuda:N or mps"),
    ("sae.k=64", "sae.k=64 must be below sae.d_sae=64; lower sae.k or raise sae.d_sae"),
    (  # refused before training, not after it when the labelling starts
        "labeling.score_coherence=1",
        "labeling.score_coherence=1 is below labeling.coherence_min=1.75; set it to at least coherence_min",
    ),
    ("data.seed=${seed}", None),  # interpolations are resolved before checking: valid
]


def _one_line(msg: str) -> bool:
    return "\n" not in msg.strip()


@pytest.mark.parametrize("override,message", BAD_VALUES)
def test_each_bad_value_is_one_line_naming_knob_and_fix(override, message, tmp_path):
    cfg = compose_cfg(
        [override, "sae.d_sae=64", "sae.k=8"] if not override.startswith("sae.k") else [override, "sae.d_sae=64"],
        tmp_path,
        tmp_path,
    )
    if message is None:
        check_config(cfg)
        return
    with pytest.raises(UserError) as err:
        check_config(cfg)
    assert str(err.value).startswith(message) and _one_line(str(err.value))


def test_interpolated_values_are_checked_as_what_they_resolve_to(tmp_path):
    cfg = compose_cfg(["seed=7"], tmp_path, tmp_path)
    with open_dict(cfg):
        cfg.seed = -3  # data.seed, domain.seed and labeling.seed are ${seed}
    with pytest.raises(UserError, match=r"^seed=-3 is invalid"):
        check_config(cfg)
    cfg = compose_cfg(["data.seed=${nowhere}"], tmp_path, tmp_path)
    with pytest.raises(UserError, match=r"^data.seed cannot be resolved: .*'nowhere'.*; fix the interpolation$"):
        check_config(cfg)


def _label_cfg(overrides: list[str]):
    """sae-label's config (its hydra node dropped, as inside a job)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="label", overrides=overrides)


def test_required_values_and_empty_hf_domain(tmp_path):
    with pytest.raises(UserError, match=r"^domain.path is required: pass domain.path=<a file or folder>$"):
        check_config(compose_cfg(["domain=files"], tmp_path, tmp_path))
    with pytest.raises(
        UserError, match=r"^domain=hf needs domain.name=<hub id> or domain.path=<a save_to_disk folder>$"
    ):
        check_config(compose_cfg(["domain=hf"], tmp_path, tmp_path))
    with pytest.raises(UserError, match=r"^run_dir is required: pass run_dir=<a finished run folder>$"):
        check_config(_label_cfg([]), skip=("paths.output_dir",))


@pytest.mark.parametrize(
    "group",
    [
        "domain",
        "sae",
        "trainer",
        "logger",
        "embedder",
        "data",
        "module",
        "labeling",
        "families",
        "callbacks",
        "experiment",
        "hparams_search",
    ],
)
def test_every_shipped_option_passes_and_every_knob_has_a_rule(group, tmp_path):
    """No false alarms on the configs we ship, and a knob added under conf/ without a rule fails here."""
    for option in group_options(group):
        extra = {"files": ["domain.path=x.csv"], "npy": ["domain.path=x.npy"], "hf": ["domain.name=ag_news"]}
        cfg = compose_cfg([f"{group}={option}", *extra.get(option, [])], tmp_path, tmp_path)
        check_config(cfg)
        missing = [k for k in leaf_keys(cfg) if k not in RULES]
        assert not missing, f"{group}={option}: no rule in validate.RULES for {missing}"
    label = _label_cfg(["run_dir=x"])
    check_config(label, skip=("paths.output_dir",))
    assert not [k for k in leaf_keys(label) if k not in RULES]


def test_errors_inside_instantiated_objects_are_unwrapped_bugs_are_not():
    """Hydra wraps what a _target_ raises in a multi-line InstantiationException."""
    with pytest.raises(Exception) as wrapped:
        instantiate({"_target_": "sae_lightning.data.embed.Embedder", "dtype": "int8"})
    assert "Error in call to target" in str(wrapped.value)
    own = _own_error(wrapped.value)
    assert isinstance(own, UserError)
    assert str(own) == "embedder.dtype=int8 is invalid; set embedder.dtype to one of float32 | float16"
    with pytest.raises(Exception) as bug:
        instantiate({"_target_": "math.sqrt", "_args_": ["x"]})
    assert _own_error(bug.value) is None  # a genuine bug keeps its traceback
    cfg = OmegaConf.create({"a": "${nowhere}", "b": "???"})
    for key in ("a", "b"):
        with pytest.raises(Exception) as unresolved:
            getattr(cfg, key)
        assert isinstance(_own_error(unresolved.value), UserError)
    OmegaConf.set_struct(cfg, True)
    with pytest.raises(Exception) as no_key:
        cfg.c  # code reading a key the config lacks: a bug, not bad input
    assert _own_error(no_key.value) is None


@pytest.mark.parametrize(
    "args,message",
    [
        (["module.lr=-1"], "error: module.lr=-1 is invalid; set module.lr to a finite number > 0"),
        (
            ["trainer.max_epochs=0"],
            "error: trainer.max_epochs=0 is invalid; set trainer.max_epochs to a whole number >= 1",
        ),
        (
            ["embedder.dtype=int8"],
            "error: embedder.dtype=int8 is invalid; set embedder.dtype to one of float32 | float16",
        ),
        (["domain=hf"], "error: domain=hf needs domain.name=<hub id> or domain.path=<a save_to_disk folder>"),
        (
            ["data.batchsize=3"],
            "error: data.batchsize is not a setting (the data settings are: batch_size, block_rows, drop_last, "
            "in_memory, num_workers, seed, shuffle, val_batch_size, val_fraction, window_blocks); check its "
            "spelling, or drop it",
        ),
        (["seed=${nope}"], "error: seed cannot be resolved: Interpolation key 'nope' not found; fix the interpolation"),
        # a folder named in German: Hydra's own line was "LexerNoViableAltException: ...; See https://hydra.cc/..."
        (
            ["domain=npy", "domain.path=/data/Zürich/x.npy"],
            "error: domain.path=/data/Zürich/x.npy cannot be read as a setting: Hydra takes such characters in "
            "a value only inside quotes; quote it, e.g. \"domain.path='/data/Zürich/x.npy'\" on the command line",
        ),
    ],
)
def test_sae_train_refuses_in_one_line_and_writes_nothing(args, message, tmp_path):
    res = run_script(
        "sae-train", *args, f"paths.log_dir={tmp_path / 'out'}", f"paths.cache_dir={tmp_path / 'cache'}", cwd=tmp_path
    )
    assert res.code == 2, res.err[-2000:]
    assert _one_line(res.err) and res.err.startswith(message), res.err
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()  # no run folder, no store


def test_sae_embed_and_sae_label_refuse_in_one_line(tmp_path):
    res = run_script(
        "sae-embed",
        "domain.unit=paragraph",
        f"paths.log_dir={tmp_path / 'out'}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        cwd=tmp_path,
    )
    assert res.code == 2 and _one_line(res.err) and res.err.startswith("error: domain.unit=paragraph")
    res = run_script("sae-label", f"paths.log_dir={tmp_path / 'out'}", cwd=tmp_path)
    assert res.code == 2 and _one_line(res.err)
    assert res.err.strip() == "error: run_dir is required: pass run_dir=<a finished run folder>"
    res = run_script("sae-label", "run_dir=x", "labeling.top_n=0", f"paths.log_dir={tmp_path / 'out'}", cwd=tmp_path)
    assert res.code == 2 and res.err.strip().startswith("error: labeling.top_n=0 is invalid")
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


# ---- corrupt files ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hand_run(tmp_path_factory, small_store) -> Path:
    """A run folder in the layout training writes (sae/, run.json) over the real 600-sentence store."""
    run = tmp_path_factory.mktemp("corrupt") / "run"
    sae = build_sae(
        sae_config(
            architecture="topk", d_in=small_store.dim, d_sae=32, k=4, metadata={"model_name": small_store.model_name}
        )
    )
    sae.save(run / "sae")
    (run / "run.json").write_text(json.dumps({"store_path": str(small_store.path), "val_fraction": 0.1, "seed": 0}))
    return run


def _retype_d_sae(path: Path) -> None:
    """d_sae as a word, in SAELens' fields and in the sae_lightning block our loader reads."""
    cfg = json.loads(path.read_text())
    cfg["d_sae"] = cfg["sae_lightning"]["d_sae"] = "many"
    path.write_text(json.dumps(cfg))


def _damaged(hand_run: Path, tmp_path: Path, damage) -> Path:
    run = tmp_path / "run"
    shutil.copytree(hand_run, run)
    damage(run)
    return run


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _edit_run_json(run: Path, **values) -> None:
    (run / "run.json").write_text(json.dumps({**json.loads((run / "run.json").read_text()), **values}))


def _store_copy(run: Path, manifest_text: str) -> None:
    """Point run.json at a copy of its store whose manifest.json holds `manifest_text`."""
    info = json.loads((run / "run.json").read_text())
    store = run.parent / "store"
    shutil.copytree(info["store_path"], store)
    (store / "manifest.json").write_text(manifest_text)
    (run / "run.json").write_text(json.dumps({**info, "store_path": str(store)}))


CORRUPTIONS = {
    "garbage cfg.json": (
        lambda r: (r / "sae" / "cfg.json").write_text("{not json"),
        r"sae/cfg.json is corrupt .*; the SAE files are damaged",
    ),
    "cfg.json not an object": (
        lambda r: (r / "sae" / "cfg.json").write_text("[1, 2]"),
        r"sae/cfg.json holds a JSON list, not an object; the SAE files are damaged",
    ),
    "cfg.json wrong types": (
        lambda r: _retype_d_sae(r / "sae" / "cfg.json"),
        r"sae/cfg.json: .*the SAE files are damaged",
    ),
    "truncated safetensors": (
        lambda r: _truncate(r / "sae" / "sae_weights.safetensors"),
        r"sae_weights.safetensors: corrupt or truncated safetensors file .*the SAE files are damaged",
    ),
    "manifest not JSON": (
        lambda r: _store_copy(r, "{"),
        r"manifest.json is corrupt .*; delete .* and run `sae-embed` again",
    ),
    "manifest not an object": (
        lambda r: _store_copy(r, "[]"),
        r"manifest.json holds a JSON list, not an object; delete .* and run `sae-embed` again",
    ),
    "manifest without its keys": (lambda r: _store_copy(r, '{"complete": true}'), r"manifest.json lacks count, dim"),
    # each was a ValueError or TypeError traceback from the split or the store's path
    "run.json seed a word": (
        lambda r: _edit_run_json(r, seed="abc"),
        r"run.json holds seed='abc', not a whole number from 0 to 4294967295; it is written when a run starts",
    ),
    "run.json val_fraction out of range": (
        lambda r: _edit_run_json(r, val_fraction=5),
        r"run.json holds val_fraction=5, not a finite number >= 0 and < 1",
    ),
    "run.json store_path a number": (
        lambda r: _edit_run_json(r, store_path=3),
        r"run.json holds store_path=3, not a path \(a non-empty string\)",
    ),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_corrupt_files_are_named_with_their_fix(case, hand_run, tmp_path):
    damage, message = CORRUPTIONS[case]
    run = _damaged(hand_run, tmp_path, damage)
    for reader in (lambda: label_run_dir(run), lambda: open_run(run)):  # sae-label, sae-search
        with pytest.raises(UserError, match=message) as err:
            reader()
        assert _one_line(str(err.value))
    if case.startswith("run.json"):
        return
    if "manifest" not in case:
        with pytest.raises(UserError, match=message):
            SparseAutoencoder.load(run / "sae")
    else:
        with pytest.raises(UserError, match=message):
            EmbeddingStore(json.loads((run / "run.json").read_text())["store_path"])


def test_sae_label_and_sae_search_on_corrupt_files_exit_2_in_one_line(hand_run, tmp_path):
    run = _damaged(hand_run, tmp_path, lambda r: _truncate(r / "sae" / "sae_weights.safetensors"))
    before = sorted(p.name for p in run.rglob("*"))
    for cmd in (
        ["sae-label", f"run_dir={run}", f"paths.log_dir={tmp_path / 'logs'}"],
        ["sae-search", run, "a query"],
    ):
        res = run_script(*cmd, cwd=tmp_path)
        assert res.code == 2 and _one_line(res.err), res.err[-2000:]
        assert "corrupt or truncated safetensors file" in res.err
    assert sorted(p.name for p in run.rglob("*")) == before  # nothing written into the run


def test_garbage_features_parquet_is_named_for_sae_search(hand_run, tmp_path):
    def garbage(run: Path) -> None:
        write_labelled_run(run, pd.DataFrame({"feature_id": [0], "label": ["x"], "top_acts": [[1.0]]}))
        (run / "features.parquet").write_bytes(b"PAR1 garbage")  # through the link: the labelling's own file

    run = _damaged(hand_run, tmp_path, garbage)
    with pytest.raises(
        UserError,
        match=rf"features.parquet cannot be read as a table .*; label the run again \(sae-label run_dir={run}\)",
    ):
        open_run(run)  # the run's folder, not a placeholder ("run_dir=<run>")
    run2 = tmp_path / "run2"
    shutil.copytree(hand_run, run2)
    write_labelled_run(run2, pd.DataFrame({"feature_id": [99], "label": ["x"], "top_acts": [[1.0]]}))
    with pytest.raises(UserError, match=r"feature ids outside 0..31"):
        open_run(run2)
    # a table without a column its readers index (edited by hand): was a KeyError
    run3 = tmp_path / "run3"
    shutil.copytree(hand_run, run3)
    write_labelled_run(run3, pd.DataFrame({"feature_id": [0], "top_acts": [[1.0]]}))
    with pytest.raises(
        UserError, match=rf"features.parquet has no label column; label the run again \(sae-label run_dir={run3}\)$"
    ):
        open_run(run3)


def test_sae_search_argument_checks(hand_run, tmp_path):
    for args, message in (
        (["--clamp", "3=nan"], "error: --clamp '3=nan': use FEATURE=VALUE with a finite number"),
        (["--clamp", "3=inf"], "error: --clamp '3=inf': use FEATURE=VALUE with a finite number"),
        # past float32: a RuntimeError traceback; past ~1e19, every cosine read 0 and texts came at random
        (["--clamp", "3=1e300"], "error: --clamp '3=1e300': use FEATURE=VALUE with a finite number from -1e+06 to"),
        (["--clamp", "3=-1e30"], "error: --clamp '3=-1e30': use FEATURE=VALUE with a finite number from -1e+06 to"),
        (["-k", "-2"], "error: -k -2: must be 1 or more"),
        (["--top", "0"], "error: --top 0: must be 1 or more"),
    ):
        res = run_script("sae-search", hand_run, "a query", *args, cwd=tmp_path)
        assert res.code == 2 and _one_line(res.err) and res.err.startswith(message), res.err[-2000:]


def test_domain_names_reach_summary_md_and_report_escaped(tiny_labelled_run, tmp_path):
    from sae_lightning.report import write_report

    run = tmp_path / "run"
    shutil.copytree(tiny_labelled_run, run)
    evil = "<img src=x onerror=alert(1)> [click](javascript:alert(1)) *bold*"
    current = RunDir(run).labeling()  # what the report reads (the top-level file is its mirror)
    features = current.read_features()
    features["main_domain"] = evil
    features.to_parquet(current.features)
    page = write_report(run).read_text()
    summary = (run / "summary.md").read_text()
    assert "<img" not in page and "<img" not in summary
    facts = next(line for line in summary.splitlines() if "domains: " in line)
    assert "&lt;img" in facts  # no raw HTML from a domain name (report/summary.py escapes it with md_cell)
