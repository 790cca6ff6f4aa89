"""Interpretation of trained SAEs without any LLM: top examples, KeyBERT labels, label scoring
against baselines, coherence and verdict per feature, and relabelling of finished runs."""

from .feature_table import FEATURE_COLUMNS, interpret_sae, write_features
from .labeling_config import LabelingConfig
from .relabel import label_run_dir, read_run_info

__all__ = ["FEATURE_COLUMNS", "LabelingConfig", "interpret_sae", "label_run_dir", "read_run_info", "write_features"]
