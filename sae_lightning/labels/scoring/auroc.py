"""Label quality with no LLM, vectorised over features, on validation texts only.

For each feature, `scoring_sets.py` draws positives across its activation range, random negatives
(validation texts where it is exactly 0) and hard negatives (texts where it is 0 that are nearest
the positives in embedding space). For a label set P (the labels, a random other feature's label,
the TF-IDF top terms):

- `P_auroc`: AUROC of cosine(embed(label), embedding(text)), positives vs random negatives,
  exactly the Mann-Whitney statistic over all pairs, ties one half;
- `P_auroc_hard`: the same against the hard negatives. A label that names only the broad subject
  scores about 0.5 here: it must say what the feature picks out of that subject;
- `P_precision`, `P_recall` (keyword_hits.py): of the validation texts holding a label keyword,
  the share the feature fires on; of the texts it fires on, the share holding a label keyword.

Text embeddings are the store's (or the judge model's, judge.py); the label is embedded by the
same model. A feature without a label, positives or negatives gets NaN.
"""

from __future__ import annotations

import numpy as np

from .keyword_hits import keyword_precision_recall
from .scoring_sets import ScoringSets, unit_vectors

FEATURE_BLOCK = 1024  # features per block: bounds the [block, rows] similarity matrix ...
BLOCK_ENTRIES = 1 << 24  # ... to this many entries (64 MiB of float32) however many rows are scored


def mann_whitney_auroc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """pos [F, P], neg [F, N] scores with NaN for missing entries -> AUROC [F] (NaN if a side is empty)."""
    pv, nv = ~np.isnan(pos), ~np.isnan(neg)
    out = np.full(pos.shape[0], np.nan)
    for start in range(0, pos.shape[0], 256):  # [256, P, N] comparisons at a time
        p, n = pos[start : start + 256, :, None], neg[start : start + 256, None, :]
        valid = pv[start : start + 256, :, None] & nv[start : start + 256, None, :]
        wins = ((p > n) + 0.5 * (p == n)) * valid
        pairs = valid.sum((1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + 256] = np.where(pairs > 0, wins.sum((1, 2)) / pairs, np.nan)
    return out


def scored_rows(sets: ScoringSets) -> np.ndarray:
    """Sorted store rows some feature's positives or negatives use (what a judge must embed)."""
    rows = np.concatenate([sets.pos_rows.ravel(), sets.neg_rows.ravel(), sets.hard_rows.ravel()])
    return np.unique(rows[rows >= 0])


class LabelScorer:
    """AUROCs of any number of label sets on the same scoring sets, with one text embedding."""

    def __init__(self, sets: ScoringSets, rows: np.ndarray, row_embeddings: np.ndarray) -> None:
        """rows: scored_rows(sets); row_embeddings [len(rows), d] by the model that embeds labels."""
        self.rows = rows
        self.text_emb = unit_vectors(row_embeddings) if len(rows) else np.zeros((0, 1), np.float32)
        self.local = {
            name: np.where(r >= 0, np.searchsorted(rows, np.maximum(r, 0)), -1)
            for name, r in (("pos", sets.pos_rows), ("neg", sets.neg_rows), ("hard", sets.hard_rows))
        }

    def auroc(self, label_emb: np.ndarray, has_label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """label_emb [F, d] (rows of unlabelled features are ignored) -> (auroc, auroc_hard) [F]."""
        F = label_emb.shape[0]
        if not len(self.rows):  # no validation texts (val_fraction=0): nothing can be scored
            return np.full(F, np.nan), np.full(F, np.nan)
        lab = unit_vectors(label_emb)
        sims = {name: np.full(idx.shape, np.nan) for name, idx in self.local.items()}
        step = max(1, min(FEATURE_BLOCK, BLOCK_ENTRIES // len(self.rows)))
        for s in range(0, F, step):
            sim = lab[s : s + step] @ self.text_emb.T  # [block, rows]
            for name, local in self.local.items():
                idx = local[s : s + step]
                got = np.take_along_axis(sim, np.maximum(idx, 0), axis=1)
                sims[name][s : s + step] = np.where(idx >= 0, got, np.nan)
        out = mann_whitney_auroc(sims["pos"], sims["neg"]), mann_whitney_auroc(sims["pos"], sims["hard"])
        for a in out:
            a[~has_label] = np.nan
        return out


def seeded_derangement(n: int, seed: int) -> np.ndarray | None:
    """A permutation with no fixed point (who gets whose label in the random baseline); None for n < 2."""
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    while True:  # about e tries on average
        perm = rng.permutation(n)
        if not (perm == np.arange(n)).any():
            return perm


def random_labels(keywords: list[list[str]], seed: int) -> tuple[list[list[str]], np.ndarray | None]:
    """The random-label baseline: each labelled feature gets another labelled feature's keywords
    (a seeded derangement). Returns the keyword lists and donor[f] (-1: none) for the embeddings."""
    labelled = np.flatnonzero([bool(k) for k in keywords])
    perm = seeded_derangement(len(labelled), seed)
    out: list[list[str]] = [[] for _ in keywords]
    donor = np.full(len(keywords), -1)
    if perm is not None:
        donor[labelled] = labelled[perm]
        for f in labelled:
            out[f] = keywords[donor[f]]
    return out, donor


def auroc_columns(
    scorer: LabelScorer, label_sets: dict[str, tuple[list[list[str]], np.ndarray]], prefix: str = ""
) -> dict[str, np.ndarray]:
    """label_sets: name -> (keyword lists, label embeddings) -> {prefix+name+'_auroc', ..._auroc_hard}."""
    out = {}
    for name, (kws, emb) in label_sets.items():
        a, h = scorer.auroc(emb, np.array([bool(k) for k in kws]))
        out[f"{prefix}{name}_auroc"], out[f"{prefix}{name}_auroc_hard"] = a, h
    return out


def keyword_columns(
    label_sets: dict[str, list[list[str]]], val_texts: np.ndarray, sets: ScoringSets, vectorizer_params: dict
) -> dict[str, np.ndarray]:
    out = {}
    for name, kws in label_sets.items():
        out[f"{name}_precision"], out[f"{name}_recall"] = keyword_precision_recall(
            kws, val_texts, sets.firing, vectorizer_params
        )
    return out
