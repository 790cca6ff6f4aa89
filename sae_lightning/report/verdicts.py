"""Per-feature verdicts as the report shows them: interpretable, mixed, token, weak, dead.

The labelling stage writes `verdict` into features.parquet (labels/scoring/verdict.py); the
report reads it as written (report/load.py refuses a table without one).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..run_schema import DEAD, INTERPRETABLE, MIXED, TOKEN, VERDICTS, WEAK
from .load import RunData

MEANING = {
    INTERPRETABLE: "its top texts share a theme; the label names it",
    MIXED: "its top texts are unrelated: the keywords come from single texts, not a shared theme",
    TOKEN: "its top texts share a word-piece, numbers or one word in several senses, not a meaning; the label names it",
    WEAK: "too rare or too little shared to judge",
    DEAD: "never fires",
}
NAMES = list(VERDICTS)  # index = the page's verdict code (and its colour class v<index>)
# The warning on a feature's card in report.html, and whether its label score follows it (a mixed
# or token feature's score is not a confidence; an interpretable one's card shows it as one).
CARD_NOTES = {
    MIXED: (
        "Mixed feature: its top texts do not share a theme, so the keywords come from single texts and do not name it.",
        True,
    ),
    TOKEN: (
        "Token feature: its top texts share a word-piece, numbers or one word in unrelated senses (the label "
        "says which), not a meaning; "
        "without it they are as unrelated as random texts.",
        True,
    ),
    WEAK: ("Weak feature: too rare or too little shared to judge its label.", False),
}


def confidence_rank(index: int) -> int:
    """The default sort's rank of a verdict code, higher first: interpretable, mixed, token, weak,
    then dead."""
    return max(0, NAMES.index(DEAD) - index)


def read_verdicts(run: RunData) -> np.ndarray:
    """One verdict string per row of features.parquet, as the labelling wrote it (computed by
    labels/scoring/verdict.py)."""
    out = np.array(run.cols["verdict"], dtype=object)
    out[run.dead] = DEAD  # the dead flag wins: a dead feature has nothing to rate
    return out


def verdict_counts(run: RunData) -> dict[str, int]:
    """Counts in VERDICTS order (zeros kept)."""
    c = Counter(read_verdicts(run))
    return {v: int(c.get(v, 0)) for v in VERDICTS}
