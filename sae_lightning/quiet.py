"""What the entry points do to keep a command's output to its results (library code never does
this: it changes process-wide logging and progress-bar state)."""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
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


def log_file_failures_once() -> None:
    """A run's log file that stops taking lines (its disk full) costs the log, not the command's
    output: Python's logging printed a '--- Logging error ---' traceback on stderr for every later
    record (sae-label's run ended well under three of them); now one warning line, and that file
    takes no more records."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handleError = functools.partial(_stop_log_file, handler)


def _stop_log_file(handler: logging.FileHandler, record: logging.LogRecord) -> None:
    err = sys.exc_info()[1]
    # muted, not removed: this runs while the logger iterates over its handlers, and removing one
    # there would skip the console's handler for this record
    handler.setLevel(logging.CRITICAL + 1)
    with contextlib.suppress(OSError):  # its buffered lines cannot be written either
        handler.close()
    reason = os.strerror(err.errno) if isinstance(err, OSError) and err.errno else str(err)
    print(f"warning: cannot write the log {handler.baseFilename} ({reason}); it stops here", file=sys.stderr)


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
