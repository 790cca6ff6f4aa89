"""Every shell command of README.md and of the docs pages works as written: the fenced ```bash
blocks and the indented lines that start with `sae-` or `make` are run in order (README first, then
the pages in file order), in one scratch folder, with tiny limits appended where they train, and
placeholders (`<time>`, `<run>`, `domain=...`) filled from what the earlier commands wrote. Only
what needs the network, a cluster, or is `make` itself is skipped, each with its reason; a command
that is neither run nor skipped fails the test, so the README, the docs and this file cannot drift
apart silently. (docs/study/ and the generated includes are the study's outputs, not commands.)"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from .cli_runner import SCRIPTS, Result, run_script

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
# Pages whose commands are run: the README, then every docs page (the study's own folders excepted).
PAGES = [README] + sorted(
    p for p in (ROOT / "docs").rglob("*.md") if not {"study", "generated"} & set(p.relative_to(ROOT / "docs").parts)
)

# Appended to every command that trains or embeds (replacing the README's own value of the key).
TINY = {
    "domain.limit": "120",
    "sae.d_sae": "64",
    "sae.k": "8",
    "data.batch_size": "32",
    "trainer.max_epochs": "1",
    "trainer.enable_progress_bar": "false",
}
TRAINS = ("sae-train", "sae-embed")
EXTRA = [("hparams_search=topk_fve", {"hydra.sweeper.n_trials": "2"})]  # an Optuna study: two trials
# Appended to commands that test statistics on a run's groups: the tiny runs hold ~11 texts a domain.
SMALL_GROUPS = {"sae-diff": ["--min-texts", "5"]}
FILL = {"domain": "wiki_mathematics"}  # `key=...` in the README: "your choice here"
# Files a page's commands read as "your own data", written into the scratch folder first.
FILES = {
    "new.csv": "text\n"
    + "".join(f"Sentence {i} of a new corpus about rivers, mountains and coasts.\n" for i in range(30))
}

# (pattern, why it is not run). Checked before anything runs.
SKIP = [
    (
        r"^make (run|test|bench|install|docs)\b",
        "`make` itself: what it runs (sae-train, pytest) is tested here and by the suite",
    ),
    (r"submitit_slurm", "needs a SLURM cluster"),
    (r"domain=(hf|arxiv_\w+)\b(?!.*domain\.path=)", "downloads a Hugging Face hub dataset (needs the network)"),
    (r"^(pip|python3? -m pip|\S*/pip)\b", "installs packages (the packaging test builds and installs the wheel)"),
    (r"^(python3? -m venv|source|\. )", "sets up a shell environment, not a command to test"),
    (r"^wandb (login|sync)\b", "talks to the W&B servers (needs the network)"),
    (r"^\S*jupyter (notebook|lab)\b", "starts a notebook server (tests/test_notebook.py executes the notebook)"),
    (
        r"^(\.venv/bin/)?sae-serve\b",
        "starts a web server that runs until stopped (tests/test_serve.py and "
        "tests/test_serve_browser.py serve runs and drive every page)",
    ),
]


def page_commands(text: str) -> list[str]:
    """Shell commands of a page in order: ```bash blocks, and indented `sae-`/`make` lines."""
    commands, fence = [], None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = None if fence is not None else stripped[3:].strip() or "text"
            continue
        if fence in ("bash", "sh", "shell", "console"):
            if stripped and not stripped.startswith("#"):
                commands.append(stripped.removeprefix("$ "))
        elif fence is None and line.startswith("    ") and re.match(r"(\.venv/bin/)?(sae-|make\b)", stripped):
            commands.append(stripped)
    return [c for c in (shlex.join(shlex.split(c, comments=True)) for c in commands) if c]


README_COMMANDS = page_commands(README.read_text(encoding="utf-8"))
COMMANDS = [
    (str(page.relative_to(ROOT)), command)
    for page in PAGES
    for command in page_commands(page.read_text(encoding="utf-8"))
]


def skip_reason(command: str) -> str | None:
    return next((why for pattern, why in SKIP if re.search(pattern, command)), None)


def run_documented(exe: str, args: list[str], workspace: Path, env: dict) -> Result:
    """Console script `exe` run with `args` in this process, the way its script runs it (cli_runner),
    from `workspace` with `env`'s variables: a new interpreter per command would spend seconds on
    imports each, and the scripts themselves are the package's entry points (test_startup and the
    packaging test start them as processes)."""
    return run_script(exe, *args, cwd=workspace, env=env)


def tiny_argv(exe: str, args: list[str]) -> list[str]:
    """args of a training command with TINY (and EXTRA) replacing the README's own values."""
    extra = dict(TINY)
    variant = next((a.split("=", 1)[1] for a in args if a.startswith("sae=")), None)
    if variant and not re.search(r"^k:", (ROOT / "conf" / "sae" / f"{variant}.yaml").read_text(), re.M):
        del extra["sae.k"]  # relu, jumprelu: no k to set
    for marker, more in EXTRA:
        if any(marker in a for a in args):
            extra.update(more)
    return [a for a in args if a.split("=", 1)[0] not in extra] + [f"{k}={v}" for k, v in extra.items()]


def finished_runs(workspace: Path) -> list[Path]:
    return [p.parent for p in workspace.glob("outputs/**/metrics.json") if (p.parent / "sae").is_dir()]


def fill_placeholder(arg: str, workspace: Path, env: dict) -> str:
    """`outputs/train/multiruns/<time>/` -> the newest folder matching it; `<run>` -> the newest
    finished run; `domain=...` -> FILL's value."""
    key, eq, value = arg.partition("=") if re.match(r"^[\w.]+=", arg) else ("", "", arg)
    if value == "...":
        if key not in FILL:
            raise AssertionError(f"placeholder {arg!r}: add a value for {key!r} to FILL in {__file__}")
        return f"{key}={FILL[key]}"
    if "<" not in value:
        return arg
    if "/" in value:  # a path with a <part> that an earlier command chose (a time stamp)
        matches = [p for p in workspace.glob(re.sub(r"<[^>]+>", "*", value).rstrip("/")) if p.is_dir()]
    else:  # <run> and the like: a folder that holds a finished run (a tiny default run when none is there yet)
        if not finished_runs(workspace):
            res = run_documented("sae-train", tiny_argv("sae-train", []), workspace, env)
            assert res.code == 0, f"the tiny default run for {arg!r} failed:\n{res.err[-3000:]}"
        matches = finished_runs(workspace)
    if not matches:
        raise AssertionError(
            f"placeholder {arg!r}: nothing under {workspace} matches; the command before it should have written it"
        )
    newest = max(matches, key=lambda p: p.stat().st_mtime)
    return f"{key}{eq}{newest}{'/' if value.endswith('/') else ''}"


def runnable(command: str, workspace: Path, env: dict) -> tuple[str, list[str]]:
    """The console script that runs `command` and its arguments: placeholders filled, tiny limits appended."""
    args = shlex.split(command)
    exe = args[0].removeprefix(".venv/bin/")
    if exe not in SCRIPTS:
        raise AssertionError(
            f"documented command {command!r}: {exe!r} is not a console script of the package "
            f"(pyproject [project.scripts]); run it here or add a SKIP rule with the reason in {__file__}"
        )
    rest = [fill_placeholder(a, workspace, env) for a in args[1:]]
    return exe, tiny_argv(exe, rest) if exe in TRAINS else rest + SMALL_GROUPS.get(exe, [])


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("readme")
    for name, text in FILES.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    """What the commands' environment changes: a scratch cache (stores of the tiny limits), no network."""
    return {
        "HF_HUB_OFFLINE": "1",
        "XDG_CACHE_HOME": str(tmp_path_factory.mktemp("readme_cache")),
        "WANDB_MODE": "offline",
    }


def test_the_readme_starts_with_the_two_commands_and_every_documented_command_is_run_or_skipped():
    assert README_COMMANDS[:2] == ["make run", "make test"], README_COMMANDS[:2]
    pages = {page for page, _ in COMMANDS}
    assert {"README.md", "docs/getting-started.md", "docs/application/compare.md"} <= pages, sorted(pages)
    assert any(c.startswith("sae-train") for _, c in COMMANDS) and any(c.startswith("sae-compare") for _, c in COMMANDS)
    for page, command in COMMANDS:
        if skip_reason(command) is None:
            exe = shlex.split(command)[0].removeprefix(".venv/bin/")
            assert exe in SCRIPTS, f"{page}: command {command!r} is neither a console script nor skipped"


@pytest.mark.slow
@pytest.mark.parametrize("page,command", COMMANDS, ids=[f"{p}: {c[:50]}" for p, c in COMMANDS])
def test_documented_command_works(page, command, workspace, env):
    reason = skip_reason(command)
    if reason:
        pytest.skip(f"{command}: {reason}")
    exe, args = runnable(command, workspace, env)
    before = {p.name for p in workspace.iterdir()}
    res = run_documented(exe, args, workspace, env)
    assert res.code == 0, (
        f"{page}: command `{command}` (run as `{shlex.join([exe, *args])}`) exited "
        f"{res.code}; stderr tail:\n{res.err[-3000:]}\nstdout tail:\n{res.out[-1500:]}"
    )
    if command.startswith("sae-train") and "-m" not in args:  # quiet: the summary is the last thing printed
        assert "Run history" not in res.out + res.err, "W&B printed its run history"
        assert res.out.rstrip().splitlines()[-1].startswith("  (fve: "), res.out[-1500:]
    named = {Path(a).parts[0] for a in args if a and not a.startswith("-")}  # e.g. `--out sparse_model`
    stray = sorted(p.name for p in workspace.iterdir() if p.name not in before | named | {"outputs"})
    assert not stray, f"{page}: command `{command}` wrote {stray} into the working directory (outputs/ only)"


def test_docs_cited_by_the_code_exist():
    """Docstrings and the README cite docs/*.md inside the repo, never a file the repo lacks."""
    root = README.parent
    texts = [README.read_text(encoding="utf-8")] + [
        p.read_text(encoding="utf-8") for p in (root / "sae_lightning").rglob("*.py")
    ]
    cited = {m for t in texts for m in re.findall(r"docs/[\w./-]+\.md", t)}
    assert cited and all((root / c).is_file() for c in cited), sorted(c for c in cited if not (root / c).is_file())
    assert not [t for t in texts if "DESIGN.md" in t]
    concepts = (root / "docs" / "concepts.md").read_text(encoding="utf-8")
    for metric in ("fve", "nmse", "l0", "cos_sim", "dead_frac", "dense_frac", "retrieval_recall@10"):
        assert f"`{metric}`" in concepts, metric
