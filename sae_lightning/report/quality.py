"""The label-quality table: the KeyBERT labels against two baselines, scored two ways.

Rows are label sources (the KeyBERT label, TF-IDF top terms, a random other feature's label, the
seed project's method and BERTopic's KeyBERTInspired: labels/naming/seed_baseline.py, bertopic_baseline.py);
columns are the means of AUROC with random negatives, AUROC with hard negatives (non-activating
texts close to the positives), and precision and recall of keyword hits. A second block repeats
the two AUROCs as graded by the independent judge model, when the run has one. Values come from
metrics.json (`<column>_mean`); when a key is absent but features.parquet has the column, the mean
is computed from it and marked; when neither exists the cell says "not measured". The page and
summary.md both render from `label_quality`, so they can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..pages.fmt import is_num
from ..run_schema import LABEL_SETS, headline_key
from .load import RunData

# (label set, its row's name), in run_schema.LABEL_SETS' order
SOURCES = list(
    zip(
        LABEL_SETS,
        (
            "KeyBERT label",
            "TF-IDF top terms",
            "random other feature's label",
            "seed method (KeyBERT per top text, merged)",
            "BERTopic KeyBERTInspired",
        ),
        strict=True,
    )
)
EMBEDDER_SCORES = [
    ("auroc", "AUROC"),
    ("auroc_hard", "AUROC, hard negatives"),
    ("precision", "keyword precision"),
    ("recall", "keyword recall"),
]
JUDGE_SCORES = [("auroc", "AUROC"), ("auroc_hard", "AUROC, hard negatives")]
NOT_MEASURED = "not measured"


@dataclass
class Cell:
    value: float | None  # None: not measured (or no finite value)
    source: str  # "metrics", "features" or "" (not measured)


@dataclass
class QualityRow:
    name: str
    cells: list[Cell]
    n_scored: int | None  # features with a finite first score (None: column absent)


@dataclass
class QualityBlock:
    title: str
    columns: list[str]
    rows: list[QualityRow]

    @property
    def measured(self) -> bool:
        return any(c.source for r in self.rows for c in r.cells)


def _cell(run: RunData, column: str) -> Cell:
    key = f"{column}_mean"
    if key in run.metrics and run.metrics[key] is not None:
        v = run.metrics[key]
        return Cell(float(v) if is_num(v) else None, "metrics")
    col = run.floats(column)
    if col is not None and np.isfinite(col).any():
        return Cell(float(np.mean(col[np.isfinite(col)])), "features")
    return Cell(None, "")


def _block(run: RunData, title: str, prefix: str, scores: list[tuple[str, str]]) -> QualityBlock:
    rows = []
    for source, name in SOURCES:
        columns = [f"{prefix}{source}_{s}" for s, _ in scores]
        first = run.floats(columns[0])
        cells = [_cell(run, c) for c in columns]
        rows.append(QualityRow(name, cells, int(np.isfinite(first).sum()) if first is not None else None))
    return QualityBlock(title, [t for _, t in scores], rows)


def table_keys() -> set[str]:
    """The metrics.json keys the table shows (`<column>_mean`), which a list of metrics beside it
    need not repeat."""
    return {
        f"{prefix}{source}_{score}_mean"
        for prefix, scores in (("", EMBEDDER_SCORES), ("judge_", JUDGE_SCORES))
        for source, _ in SOURCES
        for score, _ in scores
    }


def judge_model(run: RunData) -> str | None:
    j = run.metrics.get("judge_model")
    return str(j) if j else None


def label_quality(run: RunData) -> list[QualityBlock]:
    """The embedder block always; the judge block only when the run was judged."""
    blocks = [_block(run, "scored by the embedding model that made the labels", "", EMBEDDER_SCORES)]
    judge = _block(
        run, f"scored by the independent judge ({judge_model(run) or 'unnamed model'})", "judge_", JUDGE_SCORES
    )
    if judge_model(run) or judge.measured:
        blocks.append(judge)
    return blocks


def headline(run: RunData) -> tuple[str, dict[str, Cell]]:
    """Mean AUROC with hard negatives (the discriminating score) of label / TF-IDF / random, by the
    judge where present, else by the embedding model: the summary's one line on label quality.
    Returns (who scored, source -> cell)."""
    judged = len(label_quality(run)) > 1
    who = f"the independent judge {judge_model(run) or ''}".strip() if judged else "the embedding model"
    return who, {source: _cell(run, headline_key(source, judged).removesuffix("_mean")) for source, _ in SOURCES}
