"""Console entry points. Thin on purpose: compose the config with Hydra, check it, call a stage."""
from __future__ import annotations

import functools
import logging
import sys
from typing import Callable

import hydra
from omegaconf import DictConfig

from .config import CONF_DIR, check_choices, ddp_child_argv, register_resolvers
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
    sys.argv[1:] = ddp_child_argv(sys.argv[1:])
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


def _label(cfg: DictConfig) -> None:
    from omegaconf import OmegaConf

    from .interpret import LabelingConfig, label_run_dir

    settings = OmegaConf.to_container(cfg.labeling, resolve=True)
    settings.pop("enabled", None), settings.pop("every_n_epochs", None)
    _, summary = label_run_dir(cfg.run_dir, LabelingConfig.from_dict(settings))
    print(f"features: {cfg.run_dir}/features.parquet  (label_auroc mean {summary.get('label_auroc_mean', float('nan')):.3f})")
    if cfg.report:
        from .report import write_report

        print(f"report: {write_report(cfg.run_dir)}")


def embed() -> None:
    """sae-embed: build (or find) the embedding store for a domain and embedder."""
    _launch(_embed, "embed")


def train() -> None:
    """sae-train: embed if needed, train the SAE, label its features, write the run folder."""
    _launch(_train, "config")


def label() -> None:
    """sae-label: label a finished run folder again, without retraining."""
    _launch(_label, "label")


# ---- argparse commands (no Hydra config to compose: they read finished run dirs) ----------------


def _plain_command(main: Callable[[list[str]], None]) -> Callable[[], None]:
    """Bad input (UserError) ends a plain command with one line and exit status 2, as in _launch."""

    @functools.wraps(main)
    def wrapper() -> None:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
        try:
            main(sys.argv[1:])
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper


def _compare(argv: list[str]) -> None:
    import argparse
    import time
    from pathlib import Path

    from .interpret.compare import DEFAULT_THRESHOLD, compare_runs, write_comparison

    p = argparse.ArgumentParser(prog="sae-compare", description="Match features across per-domain SAEs by decoder "
                                "direction; per-domain feature counts of joint SAEs. Writes tables and compare.html.")
    p.add_argument("paths", nargs="+", help="a sweep dir (Hydra multirun folder) or run dirs")
    p.add_argument("--out", help="output folder (default: the sweep dir, else ./compare-<time>)")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help="decoder cosine for 'same feature'")
    p.add_argument("--shared-fraction", type=float, default=0.5, help="share of other runs for 'shared'")
    a = p.parse_args(argv)
    result = compare_runs(a.paths, threshold=a.threshold, shared_fraction=a.shared_fraction)
    sweep = result.settings.get("sweep_dir")
    out = Path(a.out) if a.out else Path(sweep) if sweep else Path.cwd() / f"compare-{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    files = write_comparison(result, out)
    counts = result.class_counts()
    for name in result.names:
        row = ", ".join(f"{c} {int(counts.loc[name, c])}" for c in counts.columns) if len(counts.columns) else ""
        print(f"{name}: {row}".rstrip(": "))
    print(f"page: {files['compare.html']}\ntables: {files['matches.parquet']}, {files['feature_classes.parquet']}")


compare = _plain_command(_compare)
compare.__doc__ = "sae-compare: which features the domains' SAEs share and which one domain has."
