"""Keyword precision and recall of a label over the whole validation split.

A text "holds" a label keyword when the keyword is one of its candidate n-grams under the
labelling vectorizer's analyzer (case-insensitive, whole words, stop words dropped exactly as when
the keyword was extracted). Per feature:

    precision = |texts holding a label keyword AND firing| / |texts holding a label keyword|
    recall    = |texts holding a label keyword AND firing| / |texts firing|

Plain counts, no smoothing: a label none of whose words occurs in the validation split predicts
nothing (precision 0); a feature that never fires there has no recall (NaN)."""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.feature_extraction.text import CountVectorizer

HOLDS_ENTRIES = 1 << 24  # most (feature, text) cells of the keyword-holds matrix at a time


def keyword_precision_recall(
    keywords: list[list[str]], val_texts: np.ndarray, firing: csr_matrix, vectorizer_params: dict
) -> tuple[np.ndarray, np.ndarray]:
    """keywords per feature ([] unlabelled), val_texts [n_val] aligned with firing's columns
    (firing [F, n_val] > 0 where the feature fires) -> (precision [F], recall [F])."""
    F = len(keywords)
    precision, recall = np.full(F, np.nan), np.full(F, np.nan)
    vocab = sorted({k for kws in keywords for k in kws})
    has_label = np.array([bool(k) for k in keywords])
    if not vocab or not len(val_texts):
        return precision, recall
    col = {k: i for i, k in enumerate(vocab)}
    X = CountVectorizer(vocabulary=vocab, binary=True, **vectorizer_params).transform([str(t) for t in val_texts])
    ind = [col[k] for kws in keywords for k in kws]
    ptr = np.cumsum([0] + [len(kws) for kws in keywords])
    L = csr_matrix((np.ones(len(ind), dtype=np.float32), ind, ptr), shape=(F, len(vocab)))
    XT = X.T.tocsr()
    fires = firing.tocsr().astype(bool).astype(np.float32)
    both, n_holds = np.zeros(F), np.zeros(F)
    # [block, n_val] at a time: a common keyword holds in most texts, and F x n_val would grow with both
    step = max(1, min(F, HOLDS_ENTRIES // max(len(val_texts), 1)))
    for s in range(0, F, step):
        holds = (L[s : s + step] @ XT).tocsr()  # > 0 where the text holds a label keyword
        holds.data[:] = 1
        both[s : s + step] = np.asarray(holds.multiply(fires[s : s + step]).sum(1)).ravel()
        n_holds[s : s + step] = np.asarray(holds.sum(1)).ravel()
    n_fires = np.asarray(fires.sum(1)).ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(n_holds > 0, both / np.maximum(n_holds, 1), 0.0)
        recall = np.where(n_fires > 0, both / np.maximum(n_fires, 1), np.nan)
    precision[~has_label], recall[~has_label] = np.nan, np.nan
    return precision, recall
