"""Shared fixtures: real model, real corpus, small limits. Stores are embedded once per session.

The suite runs under pytest-xdist (pyproject's addopts: `--dist loadfile`): a test file's tests all
run on one worker, so module fixtures are built once. The session fixtures here (the cache, the
small store, the trained runs tiny_labelled_run and wiki_topk_run) are built once for the whole
session, not once per worker: the first worker that needs one builds it in the temp folder all
workers share, the others wait on its file lock and read it (pytest-xdist's documented pattern).
A test that changes such a run copies it first (shutil.copytree into tmp_path), since tests on
every worker read the same folder at the same time; a shared folder that a test changed anyway
fails the session at teardown, naming the file."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from filelock import FileLock
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from sae_lightning import runtime
from sae_lightning.data.embed import Embedder, build_store
from sae_lightning.data.sources import WikiVitalArticles
from sae_lightning.hydra_setup import CONF_DIR, register_hydra
from sae_lightning.schemas.domain import WikiConfig

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# Nothing in the suite may reach for the Hugging Face hub (as in CI, .ci/run): a model name no cache
# holds is then refused at once, where a network that drops packets kept the hub client retrying for
# ~70 s (test_label_cli's judge "a name no cache holds"). Read when huggingface_hub loads, which
# nothing imported above does.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
register_hydra()
# The commands' own process settings (sae_lightning/runtime.py), applied before any test loads torch
# (nothing imported above does): its OpenMP runtime reads the wait policy once, when it loads. The
# suite trains, embeds and labels inside its xdist workers (the session's runs, cli_runner's
# in-process commands); left to OpenMP's default, each worker's idle threads spin on the cores the
# other worker needs (test_interop's store and six small trainings: 99 s of CPU spinning, 22 s
# sleeping, on two cores other jobs shared). In-process commands apply the same settings again, as
# their scripts do. Not in tests/__init__.py: `python3 -m tests.browser` (.ci/run) runs before the
# venv exists.
runtime.apply({})
# A suite started as a background job (`make test &`, a script's non-interactive shell) inherits
# Ctrl-C ignored, and so does every command it starts, which keeps an ignored SIGINT ignored on
# purpose (training/interrupts.stopping_on_signals): the tests that send one saw it dropped. Each
# test process takes Ctrl-C as a terminal's foreground job does; its commands inherit that.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

SMALL_TOPICS = ["Mathematics", "History", "Arts"]


def wiki_source(**settings) -> WikiVitalArticles:
    """The built-in corpus from its typed config (`name` only names a run: any will do here)."""
    return WikiVitalArticles(WikiConfig(name="test", **settings))


def pytest_collection_modifyitems(config, items) -> None:
    """`gpu` tests need CUDA: without it they are skipped, saying so (benchmarks/gpu_check.sh runs them)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(
        reason="needs a CUDA GPU (torch.cuda.is_available() is False); run benchmarks/gpu_check.sh on a GPU machine"
    )
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter) -> None:
    """`make test` says how to get the browser its report tests need, where it is missing."""
    from .browser import HOW_TO_GET, find_browser

    if find_browser() is None:
        terminalreporter.write_line(HOW_TO_GET, yellow=True)


def _tree(folder: Path) -> dict[str, list[int]]:
    """Every file under `folder` with its size and modification time: what a reader never changes.
    W&B's offline folders are left out: its service process still appends to its log and run file
    after the run has finished, in the background, whoever reads the run."""
    return {
        str(p.relative_to(folder)): [p.lstat().st_size, p.lstat().st_mtime_ns]
        for p in sorted(folder.rglob("*"))
        if not p.is_dir() and "wandb" not in p.relative_to(folder).parts
    }


def shared_folder(tmp_path_factory, worker_id: str, name: str, build: Callable[[Path], None]) -> Iterator[Path]:
    """Folder `name`, built by `build(folder)` once per test session. Under xdist it lives in the
    session's base temp folder, which every worker shares (`getbasetemp().parent`); the first worker
    to ask builds it under a file lock, the others wait and reuse it. In one process (worker_id
    "master") that parent is shared by earlier sessions too, so the folder is this session's own.
    After the session the folder must be as it was built (read-only by contract)."""
    if worker_id == "master":
        folder = tmp_path_factory.mktemp(name)
        build(folder)
        record = _tree(folder)
    else:
        root = tmp_path_factory.getbasetemp().parent
        folder, done = root / name, root / f"{name}.built.json"
        with FileLock(str(root / f"{name}.lock")):
            if not done.is_file():
                shutil.rmtree(folder, ignore_errors=True)  # a half-built one: its builder failed
                folder.mkdir()
                build(folder)
                done.write_text(json.dumps(_tree(folder)))
        record = json.loads(done.read_text())
    yield folder
    now = _tree(folder)
    changed = sorted(k for k in record.keys() | now.keys() if record.get(k) != now.get(k))
    assert not changed, (
        f"a test changed the shared session folder {folder} ({', '.join(changed[:5])}): "
        "copy it into tmp_path first (shutil.copytree)"
    )


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory, worker_id) -> Path:
    """The embedding cache of the whole session (the stores in it are built under their own lock,
    as in a user's shared ~/.cache); not checked for changes: tests add stores to it."""
    if worker_id == "master":
        return tmp_path_factory.mktemp("cache")
    cache = tmp_path_factory.getbasetemp().parent / "cache"
    cache.mkdir(exist_ok=True)
    return cache


@pytest.fixture(scope="session")
def small_store(cache_dir):
    """600 sentences over three topics, embedded with the packaged MiniLM (a few seconds); the
    store's own lock makes the workers embed it once."""
    source = wiki_source(topics=SMALL_TOPICS, limit=600, seed=0)
    return build_store(source, Embedder(show_progress=False), cache_dir)


def compose_cfg(overrides: list[str], output_dir: Path, cache_dir: Path, config_name: str = "config") -> DictConfig:
    """The real config tree, composed like lightning-hydra-template's tests; output and cache
    folders point into tmp, and `paths.output_dir` is set since no Hydra run owns it here."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.cache_dir = str(cache_dir)
        cfg.embedder.show_progress = False
    return cfg


def printed_by(run: Path) -> str:
    """What sae-train printed on stdout while it made the shared run `run` (kept beside it)."""
    return (run.parent / f"{run.name}.stdout").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def tiny_labelled_run(tmp_path_factory, worker_id, small_store, cache_dir) -> Iterator[Path]:
    """A finished default-style run (labels, families, report, W&B offline files) on the
    600-sentence store; what training printed is `printed_by(run)`."""
    from sae_lightning.pipeline import train

    topics = "[" + ",".join(f'"{t}"' for t in SMALL_TOPICS) + "]"

    def build(out: Path) -> None:
        with open(out.parent / f"{out.name}.stdout", "w", encoding="utf-8") as printed, redirect_stdout(printed):
            train(
                compose_cfg(
                    [
                        "domain=wiki_all",
                        f"domain.topics={topics}",
                        "domain.limit=600",
                        "sae.d_sae=128",
                        "sae.k=8",
                        "data.batch_size=128",
                        "trainer.max_epochs=2",
                        "logger=wandb",
                        "trainer.enable_progress_bar=false",
                    ],
                    out,
                    cache_dir,
                )
            )

    yield from shared_folder(tmp_path_factory, worker_id, "nb_run", build)


@pytest.fixture(scope="session")
def wiki_topk_run(tmp_path_factory, worker_id, cache_dir) -> Iterator[Path]:
    """A tiny labelled TopK run over the small store's 600 sentences (d_sae 64, k 4, 3 epochs of
    batches of 32), shared by the families and search tests; read-only (copy it to change it)."""
    from sae_lightning.pipeline import train

    topics = "[" + ",".join(SMALL_TOPICS) + "]"
    for parent in shared_folder(
        tmp_path_factory,
        worker_id,
        "wiki_topk",
        lambda out: train(
            compose_cfg(
                [
                    "domain=wiki_all",
                    f"domain.topics={topics}",
                    "domain.limit=600",
                    "sae=topk",
                    "sae.d_sae=64",
                    "sae.k=4",
                    "data.batch_size=32",
                    "trainer.max_epochs=3",
                    "logger=none",
                    "trainer.enable_progress_bar=false",
                ],
                out / "run",
                cache_dir,
            )
        ),
    ):
        yield parent / "run"


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 1 MiB file system (tmpfs), so a full disk is the kernel's ENOSPC, not a simulation."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)
