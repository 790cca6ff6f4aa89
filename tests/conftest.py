"""Shared fixtures: real model, real corpus, small limits. Stores are embedded once per session.

The suite runs under pytest-xdist (pyproject's addopts: `--dist loadfile`): each worker is its own
session, so a session fixture is built once per worker, and a test file's tests all run on one
worker, so module fixtures are built once. A trained run that several files need belongs here, as a
session fixture (tiny_labelled_run, wiki_topk_run); a test that changes such a run copies it first
(shutil.copytree into tmp_path), since the other tests of its worker see the same folder."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from sae_lightning.hydra_setup import CONF_DIR, register_hydra
from sae_lightning.data.embed import Embedder, build_store
from sae_lightning.data.sources import WikiVitalArticles

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
register_hydra()

SMALL_TOPICS = ["Mathematics", "History", "Arts"]


def pytest_collection_modifyitems(config, items) -> None:
    """`gpu` tests need CUDA: without it they are skipped, saying so (benchmarks/gpu_check.sh runs them)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False); "
                                   "run benchmarks/gpu_check.sh on a GPU machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter) -> None:
    """`make test` says how to get the browser its report tests need, where it is missing."""
    from .browser import HOW_TO_GET, find_browser

    if find_browser() is None:
        terminalreporter.write_line(HOW_TO_GET, yellow=True)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def small_store(cache_dir):
    """600 sentences over three topics, embedded with the packaged MiniLM (a few seconds)."""
    source = WikiVitalArticles(topics=SMALL_TOPICS, limit=600, seed=0)
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


@pytest.fixture(scope="session")
def tiny_labelled_run(tmp_path_factory, small_store, cache_dir) -> Path:
    """A finished default-style run (labels, families, report) on the 600-sentence store."""
    from sae_lightning.pipeline import train

    out = tmp_path_factory.mktemp("nb_run")
    topics = "[" + ",".join(f'"{t}"' for t in SMALL_TOPICS) + "]"
    cfg = compose_cfg(["domain=wiki_all", f"domain.topics={topics}", "domain.limit=600", "sae.d_sae=128",
                       "sae.k=8", "data.batch_size=128", "trainer.max_epochs=2", "logger=none",
                       "trainer.enable_progress_bar=false"], out, cache_dir)
    train(cfg)
    return out


@pytest.fixture(scope="session")
def wiki_topk_run(tmp_path_factory, cache_dir) -> Path:
    """A tiny labelled TopK run over the small store's 600 sentences (d_sae 64, k 4, 3 epochs of
    batches of 32), shared by the families and search tests; read-only (copy it to change it)."""
    from sae_lightning.pipeline import train

    out = tmp_path_factory.mktemp("wiki_topk") / "run"
    topics = "[" + ",".join(SMALL_TOPICS) + "]"
    train(compose_cfg(["domain=wiki_all", f"domain.topics={topics}", "domain.limit=600", "sae=topk", "sae.d_sae=64",
                       "sae.k=4", "data.batch_size=32", "trainer.max_epochs=3", "logger=none",
                       "trainer.enable_progress_bar=false"], out, cache_dir))
    return out


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 1 MiB file system (tmpfs), so a full disk is the kernel's ENOSPC, not a simulation."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)
