"""Interpretation of trained SAEs without any LLM: top examples, KeyBERT labels, label scoring
against baselines, coherence and verdict per feature (label_run.py runs them on a finished run).

naming/ turns a feature's top texts into a name; scoring/ measures how well that name finds the
feature's held-out texts; feature_table.py puts both into features.parquet's rows."""

from ..schemas.labeling import LabelingConfig
from .feature_table import FEATURE_COLUMNS, interpret_sae, write_features

__all__ = ["FEATURE_COLUMNS", "LabelingConfig", "interpret_sae", "write_features"]
