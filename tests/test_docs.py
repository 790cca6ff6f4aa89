"""The documentation site builds with `mkdocs build --strict` (no broken link, include or API
reference), and its config reference, generated from conf/, lists every knob there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs"))

from gen_config_reference import config_reference, parse  # noqa: E402


def leaf_paths(node, prefix: str = "") -> list[str]:
    if isinstance(node, dict) and node:
        return [p for k, v in node.items() for p in leaf_paths(v, f"{prefix}{k}.")]
    return [prefix[:-1]]


def test_config_reference_lists_every_knob_of_every_yaml_in_conf():
    reference = config_reference(ROOT / "conf")
    files = sorted((ROOT / "conf").rglob("*.yaml"))
    assert len(files) > 40
    for path in files:
        rel = path.relative_to(ROOT / "conf")
        section = reference.split(f"### `conf/{rel}`\n", 1)[1].split("\n### ", 1)[0]
        data = yaml.safe_load(path.read_text()) or {}
        knobs = [p for p in leaf_paths(data) if p and not p.startswith("defaults")]
        for knob in knobs:
            assert f"| `{knob}` |" in section, f"{rel}: {knob} is missing from the config reference"
        assert {k.path for k in parse(path)[1]} >= set(knobs)


def test_config_reference_carries_values_and_comments():
    reference = config_reference(ROOT / "conf")
    assert "| `alpha` | `0.05` | Benjamini-Hochberg false-discovery rate" in reference
    assert "| `hydra.sweeper.sampler.n_startup_trials` | `5` | random trials before TPE takes over |" in reference
    assert "| `k` | `16` |" in reference  # conf/sae/topk.yaml


def test_docs_build_strictly(tmp_path):
    site = tmp_path / "site"
    res = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    config_page = (site / "reference" / "config" / "index.html").read_text()
    assert "min_log_odds" in config_page and "dead_after_samples" in config_page
    assert "sae_lightning.diff.analysis.diff_groups" in (site / "reference" / "api" / "index.html").read_text()
    study = (site / "application" / "study" / "index.html").read_text()
    assert "features separate them" in study and "--8&lt;--" not in study  # includes resolved, real output
    assert (
        "<th>verdict</th>" in study and "<th>coherence</th>" in study
    )  # the diff tables carry the labelling's judgement
    retrieval = (site / "application" / "retrieval" / "index.html").read_text()
    assert "recall@10, same article" in retrieval and "near because of" in retrieval  # retrieval.py's real output
    started = (site / "getting-started" / "index.html").read_text()
    assert "run folder: outputs/study/wiki_all" in started and "interpretable" in started  # the study run's summary
    for section in ("getting-started", "training", "interpretation", "application", "reference", "benchmarks"):
        assert (site / section / "index.html").is_file()


def test_readme_is_the_front_page_linking_every_section():
    """The README is short: the two commands first, then links into each docs section."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 80
    for page in (
        "docs/getting-started.md",
        "docs/training/index.md",
        "docs/interpretation/index.md",
        "docs/application/index.md",
        "docs/reference/index.md",
        "docs/benchmarks.md",
    ):
        assert f"]({page})" in readme and (ROOT / page).is_file(), page


def test_screenshots_of_the_interpretation_page_are_committed_pngs():
    """docs/study/screenshot.sh writes them from the built site in headless Chromium."""
    for name in ("interpretation.png", "interpretation-full.png"):
        data = (ROOT / "docs" / "assets" / "screenshots" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(data[16:20], "big") == 1280, name


def test_the_command_line_reference_lists_every_console_script():
    """docs/reference/cli.md's table is where the docs send a user to look up a command; it left out
    sae-export and sae-serve."""
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    table = (ROOT / "docs" / "reference" / "cli.md").read_text().split("\n## ")[0]
    listed = {line.split("`")[1].split()[0] for line in table.splitlines() if line.startswith("| `")}
    assert listed == set(scripts)


def test_a_default_the_docs_quote_after_a_knob_is_the_configs(tmp_path):
    """ "`labeling.token_share_gap` (0.5)": a number in brackets right after a knob's name is its
    default, and was left at an old one (0.45 in the schema). The blind-reading log (reading.md) and
    the study's pages record the values of their day and are not checked."""
    import re

    from omegaconf import OmegaConf

    from .conftest import compose_cfg

    def leaves(node: dict, prefix: str = "") -> dict:
        out = {}
        for key, value in node.items():
            out.update(leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
        return out

    defaults = leaves(OmegaConf.to_container(compose_cfg([], tmp_path, tmp_path)))
    pages = [p for p in (ROOT / "docs").rglob("*.md") if not {"study", "generated"} & set(p.parts)]
    quoted = [
        (page.name, key, number)
        for page in [ROOT / "README.md", *pages]
        if page.name != "reading.md"
        for key, number in re.findall(r"`\+?([a-z_]+(?:\.[a-z_0-9]+)+)` \((-?\d[\d,]*(?:\.\d+)?)\b", page.read_text())
        if isinstance(defaults.get(key), (int, float)) and not isinstance(defaults.get(key), bool)
    ]
    assert quoted  # the pattern still finds the docs' quotes
    assert [q for q in quoted if float(q[2].replace(",", "")) != defaults[q[1]]] == []


def test_every_config_file_the_docs_name_exists():
    """The run-folder reference sent readers to conf/labeling/default.yaml; the group's file is keybert.yaml."""
    import re

    named = {
        path
        for page in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]
        for path in re.findall(r"conf/[a-z_/]+\.yaml", page.read_text())
    }
    assert named and sorted(p for p in named if not (ROOT / p).is_file()) == []
