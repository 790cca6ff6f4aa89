"""One run, top to bottom: embedding store -> DataModule -> SAE training -> files of the run.

Reads like the data flow in DESIGN.md; each step is a call into the module that owns it."""
from __future__ import annotations

import logging

from hydra.utils import instantiate
from omegaconf import DictConfig

from .embed import build_store
from .store import EmbeddingStore

log = logging.getLogger(__name__)


def build_store_from_cfg(cfg: DictConfig) -> EmbeddingStore:
    """The embedding stage: find the store for (domain, embedder) or embed it now."""
    source = instantiate(cfg.domain)
    embedder = instantiate(cfg.embedder)
    return build_store(source, embedder, cfg.paths.cache_dir)


def train(cfg: DictConfig) -> float | None:
    store = build_store_from_cfg(cfg)
    log.info("store ready: %s", store)
    if not cfg.get("train", True):
        return None
    raise NotImplementedError("training lands with the SAE issue")
