"""Console entry points. Thin on purpose: compose the config with Hydra, check it, call a stage."""
from __future__ import annotations

import functools
import logging
import sys
from typing import Callable

import hydra
from omegaconf import DictConfig

from .config import CONF_DIR, check_choices, register_resolvers
from .errors import UserError

log = logging.getLogger("sae_lightning")


def _one_line_errors(task: Callable[[DictConfig], object]) -> Callable[[DictConfig], object]:
    """Bad input ends the command with one line and exit status 2, not a traceback. In a multirun
    the error is re-raised so Hydra records that job as failed and the sweep goes on."""

    @functools.wraps(task)
    def wrapper(cfg: DictConfig) -> object:
        try:
            return task(cfg)
        except UserError as err:
            from hydra.core.hydra_config import HydraConfig
            from hydra.types import RunMode

            log.error("%s", err)
            if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
                raise
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper


def _launch(task: Callable[[DictConfig], object], config_name: str) -> None:
    register_resolvers()
    try:
        check_choices([a for a in sys.argv[1:] if not a.startswith("-")])
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)(_one_line_errors(task))()


def _embed(cfg: DictConfig) -> None:
    from .pipeline import build_store_from_cfg

    store = build_store_from_cfg(cfg)
    print(f"embedding store: {store.path} ({len(store)} x {store.dim}, {store.model_name})")


def _train(cfg: DictConfig) -> float | None:
    from .pipeline import train

    return train(cfg)


def embed() -> None:
    """sae-embed: build (or find) the embedding store for a domain and embedder."""
    _launch(_embed, "embed")


def train() -> None:
    """sae-train: embed if needed, train the SAE, label its features, write the run folder."""
    _launch(_train, "config")
