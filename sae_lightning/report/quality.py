"""The label-quality table: KeyBERT labels against the two baselines of docs/concepts.md "Label metrics".

Rows are label sources (KeyBERT, a random other feature's label, TF-IDF top terms), columns are
mean/median of label_auroc and keyword_hit_lift. Values come from metrics.json; when a key is
absent but features.parquet has the per-feature column, the value is computed from it and marked
as such; when neither exists the cell says "not measured". The HTML page and summary.md both
render from `label_quality`, so they can never disagree.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .load import RunData
from .fmt import is_num

# (row title, {score: (metric key prefixes to try, features.parquet column)})
ROWS = [
    ("KeyBERT label", {"auroc": (["label_auroc"], "label_auroc"),
                       "lift": (["keyword_hit_lift"], "keyword_hit_lift")}),
    ("random other feature's label", {"auroc": (["random_label_auroc"], "random_label_auroc"),
                                      "lift": (["random_keyword_hit_lift"], "random_keyword_hit_lift")}),
    ("TF-IDF top terms", {"auroc": (["tfidf_auroc", "tfidf_label_auroc"], "tfidf_auroc"),
                          "lift": (["tfidf_keyword_hit_lift"], "tfidf_keyword_hit_lift")}),
]
COLUMNS = [("auroc", "mean"), ("auroc", "median"), ("lift", "mean"), ("lift", "median")]
COLUMN_TITLES = ["label AUROC mean", "label AUROC median", "keyword-hit lift mean", "keyword-hit lift median"]
NOT_MEASURED = "not measured"


@dataclass
class Cell:
    value: float | None  # None: not measured
    source: str  # "metrics", "features" or ""


@dataclass
class QualityRow:
    name: str
    cells: list[Cell]
    n_scored: int | None  # features with a finite AUROC for this source (None: column absent)


def _from_column(v: np.ndarray | None, stat: str) -> float | None:
    if v is None:
        return None
    v = v[np.isfinite(v)]  # NaN = not scored; an infinite lift (no negative hit) would swamp a mean
    if not v.size:
        return None
    return float(np.mean(v) if stat == "mean" else np.median(v))


def label_quality(run: RunData) -> list[QualityRow]:
    rows = []
    for name, spec in ROWS:
        cells = []
        for score, stat in COLUMNS:
            prefixes, column = spec[score]
            cell = Cell(None, "")
            for p in prefixes:
                key = f"{p}_{stat}"
                if key in run.metrics and run.metrics[key] is not None:
                    v = run.metrics[key]
                    cell = Cell(float(v) if is_num(v) or isinstance(v, float) else None, "metrics")
                    break
            if cell.source == "":
                val = _from_column(run.floats(column), stat)
                if val is not None:
                    cell = Cell(val, "features")
            cells.append(cell)
        col = run.floats(spec["auroc"][1])
        n_scored = int(np.isfinite(col).sum()) if col is not None else None
        rows.append(QualityRow(name, cells, n_scored))
    return rows


def auroc_series(run: RunData) -> list[tuple[str, np.ndarray, str]]:
    """Per-feature AUROC columns present in features.parquet, for the overlaid histogram."""
    out = []
    for (name, spec), cls in zip(ROWS, ("s0", "s1", "s2")):
        v = run.floats(spec["auroc"][1])
        if v is not None and np.isfinite(v).any():
            out.append((name, v, cls))
    return out
