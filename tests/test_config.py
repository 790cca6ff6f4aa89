"""Hydra composition of the real config tree: every domain, embedder and SAE option composes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sae_lightning.data.sources import WikiVitalArticles, build_source
from sae_lightning.errors import UserError
from sae_lightning.hydra_setup import check_choices, group_options
from sae_lightning.schemas.domain import WIKI_TOPICS

from .cli_runner import run_script
from .conftest import compose_cfg


def test_a_domain_config_per_topic_plus_all():
    wiki = [o for o in group_options("domain") if o.startswith("wiki_")]
    assert sorted(wiki) == sorted(["wiki_all"] + [f"wiki_{s}" for s in WIKI_TOPICS])


@pytest.mark.parametrize("domain", [o for o in group_options("domain") if o.startswith("wiki_")])
def test_wiki_domains_compose_and_instantiate(domain, tmp_path):
    cfg = compose_cfg([f"domain={domain}"], tmp_path, tmp_path)
    source = build_source(cfg.domain)
    assert isinstance(source, WikiVitalArticles)
    assert cfg.domain.name == domain
    expected = list(WIKI_TOPICS.values()) if domain == "wiki_all" else [WIKI_TOPICS[domain[len("wiki_") :]]]
    assert source.cfg.topics == expected


@pytest.mark.parametrize("group", ["sae", "trainer", "logger", "embedder", "data"])
def test_every_option_of_a_group_composes(group, tmp_path):
    for option in group_options(group):
        cfg = compose_cfg([f"{group}={option}", "domain=npy", "domain.path=x.npy"], tmp_path, tmp_path)
        assert cfg[group] is not None or option == "none"


def test_unknown_domain_is_one_line_listing_known_ones():
    with pytest.raises(UserError, match=r"unknown domain wiki_astrology; known: .*wiki_mathematics"):
        check_choices(["domain=wiki_mathematics,wiki_astrology"])
    check_choices(["domain=glob(wiki_*)", "trainer.max_epochs=3"])  # left to Hydra


def test_cli_unknown_domain_and_bad_limit_exit_nonzero_in_one_line(tmp_path):
    res = run_script("sae-embed", f"paths.log_dir={tmp_path}", "domain=wiki_nowhere")
    assert res.code == 2 and res.err.strip().count("\n") == 0 and "known: " in res.err
    res = run_script(
        "sae-embed", f"paths.log_dir={tmp_path}", "domain=wiki_arts", "domain.limit=-1", f"paths.cache_dir={tmp_path}"
    )
    assert res.code == 2 and res.err.strip().splitlines()[-1].startswith("error: domain.limit=-1")
    assert not (tmp_path / "stores").exists()  # nothing half-written


def test_empty_group_choice_is_one_line_listing_options():
    with pytest.raises(UserError, match=r"^domain= names no domain; pick one of .*wiki_all"):
        check_choices(["domain="])


@pytest.mark.parametrize("command,group", [("sae-embed", "domain"), ("sae-label", "labeling"), ("sae-train", "logger")])
def test_a_null_group_choice_is_one_line_in_every_hydra_command(command, group, tmp_path):
    """domain=null, labeling=null (or the API's train_sae(sae=None)) was Hydra's ValueError traceback
    'Config group override must be a string or a list. Got NoneType', in every Hydra command."""
    res = run_script(command, f"{group}=null", f"paths.log_dir={tmp_path}")
    assert res.code == 2 and res.err.splitlines() == [
        f"error: {group}=null names no {group} (a config group cannot be null); pick one of "
        f"{', '.join(group_options(group))}, or leave {group}= out for its default"
    ], res.err[-2000:]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "override,message",
    [
        (
            "data.batchsize=3",
            r"^data.batchsize is not a setting \(the data settings are: batch_size, .*\); "
            r"check its spelling, or drop it$",
        ),
        ("domain.topics=[Arts", r"^no viable alternative at input '\[Arts'"),
        ("~domain.nothing", r"^Could not delete from config. 'domain.nothing' does not exist$"),
        (
            "hydra/launcher=nope",
            r"^In 'hydra/config': Could not find 'hydra/launcher/nope'; Available options in "
            r"'hydra/launcher'; basic",
        ),
        ("domain.limit=abc", r"^domain.limit=abc is invalid; set domain.limit to a whole number >= 1, or null$"),
    ],
)
def test_composition_and_value_errors_are_one_line_before_hydra_runs(override, message):
    from sae_lightning.hydra_setup import compose_and_check

    with pytest.raises(UserError, match=message) as err:
        compose_and_check("config", [override])
    assert "\n" not in str(err.value)
    compose_and_check("config", ["trainer.max_epochs=3"])  # a good override passes


@pytest.mark.parametrize("flags", [[], ["-m"]])
def test_a_value_of_the_run_folder_that_does_not_resolve_is_one_line(flags, tmp_path):
    """task_name=${nope} breaks hydra.run.dir, which Hydra resolves before any job runs: the
    command still ends in one line and status 2, and writes nothing (found by the property tests)."""
    np.save(tmp_path / "x.npy", np.ones((40, 8), np.float32))
    out = tmp_path / "out"
    res = run_script(
        "sae-train",
        *flags,
        "domain=npy",
        f"domain.path={tmp_path / 'x.npy'}",
        "task_name=${nope}",
        f"paths.log_dir={out}",
        "logger=none",
    )
    assert res.code == 2, res.err[-2000:]
    says = {  # a single run's values are checked before its folder, so its line names the knob
        (): "error: task_name cannot be resolved: Interpolation key 'nope' not found; fix the interpolation",
        ("-m",): "error: config: Interpolation key 'nope' not found; fix the value on the command line or under conf/",
    }
    assert res.err.strip().splitlines() == [says[tuple(flags)]]
    assert not out.exists()


def test_empty_cache_and_outputs_variables_count_as_unset(monkeypatch, tmp_path):
    """XDG_CACHE_HOME= (the XDG spec: empty means the default) put the stores under /sae-lightning,
    at the root of the file system; SAE_LIGHTNING_OUTPUTS= refused every Hydra command naming
    paths.log_dir, which sae-compare and the API already took as unset."""
    from sae_lightning.compare.write import default_compare_dir
    from sae_lightning.data.store import default_cache_dir
    from sae_lightning.hydra_setup import compose_config

    monkeypatch.setenv("XDG_CACHE_HOME", "")
    monkeypatch.setenv("SAE_LIGHTNING_OUTPUTS", "")
    monkeypatch.chdir(tmp_path)
    paths = compose_config("embed", []).paths
    assert paths.cache_dir == str(default_cache_dir()) == str(Path.home() / ".cache/sae-lightning")
    assert paths.log_dir == "outputs" and default_compare_dir("t").parent == tmp_path / "outputs/compare"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    monkeypatch.setenv("SAE_LIGHTNING_OUTPUTS", str(tmp_path / "o"))
    paths = compose_config("embed", []).paths
    assert paths.cache_dir == str(tmp_path / "c/sae-lightning") and paths.log_dir == str(tmp_path / "o")


def test_a_quoted_tilde_in_a_run_folder_is_the_home_folder(monkeypatch, tmp_path):
    """Hydra takes paths.log_dir='~/logs' literally: the log folder went to ./~/logs/ while the
    store's cache ('~/cache') and the output checks expanded it."""
    from sae_lightning.hydra_setup import compose_and_check

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    folder = compose_and_check("label", ["run_dir=x", "paths.log_dir='~/logs'"])
    assert folder.startswith(str(tmp_path / "home" / "logs" / "label" / "runs")), folder
    assert compose_and_check("config", ["domain=npy", "domain.path=x.npy", "run_dir='~/r'"]) == str(
        tmp_path / "home" / "r"
    )
    assert not (tmp_path / "~").exists()
