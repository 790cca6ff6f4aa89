"""What the entry points do to keep a command's output to its results (library code never does
this: it changes process-wide logging and progress-bar state)."""

from __future__ import annotations

import contextlib
import io
import logging
import sys

from .import_hooks import WrappedLoader, wrap_exec


def apply_hydra_logger_levels() -> None:
    """Re-apply the levels of hydra.job_logging.loggers (conf/hydra/job_logging/quiet.yaml): Lightning sets its
    own loggers to INFO when it is imported, which happens after Hydra configured logging."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    for name, spec in (HydraConfig.get().job_logging.get("loggers") or {}).items():
        if spec is not None and spec.get("level"):
            logging.getLogger(name).setLevel(spec.level)


def no_model_loading_bars() -> None:
    """transformers draws a "Loading weights" bar per model load: a command's output has none. The
    hub's switch is an environment variable read when huggingface_hub loads, so setting it costs no
    import; libraries loaded already are told directly."""
    import os

    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


# Warnings of one library about another's internals: nothing a user of these commands can act on.
THIRD_PARTY_WARNINGS = (
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",  # Lightning's _pytree on torch >= 2.10, per fit
)


def drop_third_party_warnings() -> None:
    """Filter THIRD_PARTY_WARNINGS out of the command's output (any category: they change)."""
    import warnings

    for message in THIRD_PARTY_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


WANDB_NOTICE_MODULE = "transformers.integrations.integration_utils"


class _SilentExec(WrappedLoader):
    """Runs a module's top level with stdout dropped."""

    def exec_module(self, module) -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            self.loader.exec_module(module)


def drop_wandb_offline_notice() -> None:
    """transformers prints "[INFO] Running in WANDB offline mode" on stdout when its W&B integration
    is imported with WANDB_MODE=offline (the default here). A command's stdout is its results and
    its stderr one line on bad input, so that module's top level runs with stdout dropped, whenever
    something (Lightning's W&B logger, sentence-transformers) imports it. Importing it here instead
    would cost every command transformers' import (seconds; 10 s on loaded cores), needed or not."""
    wrap_exec(WANDB_NOTICE_MODULE, _SilentExec)
