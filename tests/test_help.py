"""`--help` of the Hydra commands (sae_lightning/hydra_help.py): Hydra's page (the groups, then the
composed config with the overrides given), listing only the choices a user can pick. Its time is
benchmarks/bench_startup.py's."""

from __future__ import annotations

import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from sae_lightning.hydra_setup import CONF_DIR, group_options

from .conftest import compose_cfg


def helped(command: str, *argv: str) -> subprocess.CompletedProcess:
    func = command.removeprefix("sae-")
    code = f"import sys; sys.argv = {[command, *argv]!r}; from sae_lightning.cli import {func}; {func}()"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def sections(page: str) -> tuple[dict[str, list[str]], str]:
    """The group -> options lines and the config of a help page."""
    groups_part = page.split("== Configuration groups ==")[1].split("== Config ==")[0]
    groups = dict(line.split(": ", 1) for line in groups_part.splitlines()[2:] if ": " in line)
    config = page.split("Override anything in the config (foo.bar=value)\n\n")[1].split("\n\nPowered by Hydra")[0]
    return {g: o.split(", ") for g, o in groups.items()}, config


@pytest.mark.parametrize("command", ["sae-train", "sae-embed", "sae-label"])
def test_help_lists_the_choices_and_the_composed_config(command, tmp_path):
    res = helped(command, "--help")
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.startswith(f"{command} is powered by Hydra.")
    groups, config = sections(res.stdout)
    every = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name != "hydra")
    if command == "sae-label":  # only the groups it composes: `sae-label sae=relu` is refused
        every = ["labeling", "paths", "runtime"]
    assert groups == {g: group_options(g) for g in every}  # no `_schema*`, no shared bases such as `_wiki`
    assert not any(o.startswith("_") for options in groups.values() for o in options)
    name = {"sae-train": "config", "sae-embed": "embed", "sae-label": "label"}[command]
    composed = compose_cfg([], tmp_path, tmp_path, config_name=name) if name != "label" else None
    if composed is not None:  # the config as Hydra composes it (compose_cfg sets only the folders)
        assert OmegaConf.create(config).keys() == composed.keys()
        assert OmegaConf.to_container(OmegaConf.create(config).sae) == OmegaConf.to_container(composed.sae)


def test_help_applies_overrides_and_refuses_bad_ones_in_one_line():
    res = helped("sae-train", "sae=relu", "trainer.max_epochs=3", "--help")
    assert res.returncode == 0, res.stderr[-2000:]
    config = OmegaConf.create(sections(res.stdout)[1])
    assert config.sae.architecture == "relu" and config.trainer.max_epochs == 3
    res = helped("sae-train", "sae=nope", "--help")
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        "error: unknown sae nope; known: " + ", ".join(group_options("sae"))
    ]
    res = helped("sae-train", "trainer.max_epoch=3", "--help")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert res.stderr.startswith("error: trainer.max_epoch is not an argument of pytorch_lightning.Trainer")


def test_hydra_help_is_still_hydras():
    res = helped("sae-train", "--hydra-help")
    assert res.returncode == 0 and "== Flags ==" in res.stdout


def test_help_into_a_closed_pipe_ends_quietly():
    """`sae-train --help | head -1` once ended in a BrokenPipeError traceback."""
    code = "import sys; sys.argv = ['sae-train', '--help']; from sae_lightning.cli import train; train()"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # the reader is gone before the page is written (the command takes a second to start)
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 141 and err == "", err


@pytest.mark.parametrize("command", ["sae-compare", "sae-search", "sae-diff", "sae-export", "sae-serve"])
def test_plain_commands_help_names_each_flags_default_as_the_parser_has_it(command, monkeypatch):
    """Every option with a default says what it does and its default in its --help line, read from the
    parser's own default (sae-search's --top and -k listed none, so a user could not tell how many rows
    come back; sae-diff's and sae-compare's conf/ flags said only '(default 0.7; conf/compare.yaml)')."""
    import argparse

    from .cli_runner import run_script

    parsers = []
    original = argparse.ArgumentParser.parse_args
    monkeypatch.setattr(
        argparse.ArgumentParser, "parse_args", lambda self, *a: parsers.append(self) or original(self, *a)
    )
    assert run_script(command, "--help").code == 0
    parser = parsers[0]
    for action in parser._actions:
        if action.option_strings and action.nargs != 0 and action.default not in (None, [], argparse.SUPPRESS):
            said = parser._get_formatter()._expand_help(action)
            assert f"default {action.default}" in said, action.option_strings
            assert not said.startswith("("), action.option_strings  # what the flag does, then its default
