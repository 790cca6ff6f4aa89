"""Trainer callbacks: statistics and labelling that run beside the training loop."""

from .dead_features import DeadFeatureStats
from .epoch_checkpoint import EpochCheckpoint
from .periodic_checkpoint import PeriodicCheckpoint
from .run_export import RunExport

__all__ = ["DeadFeatureStats", "EpochCheckpoint", "PeriodicCheckpoint", "RunExport"]
