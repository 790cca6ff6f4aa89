"""What the entry points do to keep a command's output to its results (library code never does
this: it changes process-wide logging and progress-bar state)."""
from __future__ import annotations

import logging


def apply_hydra_logger_levels() -> None:
    """Re-apply the levels of hydra.job_logging.loggers (conf/hydra/default.yaml): Lightning sets its
    own loggers to INFO when it is imported, which happens after Hydra configured logging."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    for name, spec in (HydraConfig.get().job_logging.get("loggers") or {}).items():
        if spec is not None and spec.get("level"):
            logging.getLogger(name).setLevel(spec.level)


def no_model_loading_bars() -> None:
    """transformers draws a weight-loading bar per model load; a command that prints results has none."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def wandb_offline_notice_to_stderr() -> None:
    """transformers prints "[INFO] Running in WANDB offline mode" on stdout when its W&B integration
    is imported with WANDB_MODE=offline (the default here); a command's stdout is its results, so
    the module is imported first with that line sent to stderr."""
    import contextlib
    import os
    import sys

    if os.environ.get("WANDB_MODE") != "offline":
        return
    with contextlib.redirect_stdout(sys.stderr):
        import transformers.integrations.integration_utils  # noqa: F401
