"""Per-feature verdicts as the report shows them: interpretable, mixed, token, weak, dead.

The labelling stage writes `verdict` into features.parquet. A run labelled before verdicts
existed has none: its dead features are still `dead` (from the dead flag), its live ones are
`unrated`, and the page says to relabel it with `sae-label`.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..run_schema import DEAD, INTERPRETABLE, MIXED, TOKEN, VERDICTS, WEAK
from .load import RunData

UNRATED = "unrated"
MEANING = {
    INTERPRETABLE: "its top texts share a theme; the label names it",
    MIXED: "its top texts are unrelated: the keywords come from single texts, not a shared theme",
    TOKEN: "its top texts share a word-piece or numbers, not a meaning; the label names the pattern",
    WEAK: "too rare or too little shared to judge",
    DEAD: "never fires",
    UNRATED: "labelled before verdicts existed",
}
NAMES = [*VERDICTS, UNRATED]  # index = the page's verdict code (and its colour class v<index>)


def confidence_rank(index: int) -> int:
    """The default sort's rank of a verdict code, higher first: interpretable, mixed, token, weak,
    then dead and unrated together."""
    return max(0, NAMES.index(DEAD) - index)


RELABEL_HINT = "relabel the run with `sae-label run_dir=<run>` to get coherence, verdicts and the new scores"


def has_verdicts(run: RunData) -> bool:
    return "verdict" in run.cols


def read_verdicts(run: RunData) -> np.ndarray:
    """One verdict string per row of features.parquet, as the labelling wrote it (computed by
    labels/scoring/verdict.py)."""
    col = run.cols.get("verdict")
    out = np.array([UNRATED] * run.n, dtype=object)
    if col is not None:
        out[:] = [v if v in VERDICTS else UNRATED for v in col]
    out[run.dead] = DEAD  # the dead flag wins: a dead feature has nothing to rate
    return out


def verdict_counts(run: RunData) -> dict[str, int]:
    """Counts in VERDICTS order (zeros kept), with `unrated` only when some feature is unrated."""
    c = Counter(read_verdicts(run))
    out = {v: int(c.get(v, 0)) for v in VERDICTS}
    if c.get(UNRATED):
        out[UNRATED] = int(c[UNRATED])
    return out
