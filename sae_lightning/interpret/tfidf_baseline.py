"""The TF-IDF baseline label: a feature's top terms by plain TF-IDF of its joined top texts.

Same candidates as KeyBERT (candidates.DocTerms), idf from sklearn's TfidfTransformer fitted on the
train texts' counts: the numbers `TfidfVectorizer(...).fit(train_texts)` would give, without a
second tokenising pass. Row normalisation is skipped: it does not change the order within a row.
"""
from __future__ import annotations

import numpy as np
from sklearn.feature_extraction.text import TfidfTransformer

from .candidates import DocTerms, TrainCounts


def tfidf_top_terms(terms: DocTerms | None, counts: TrainCounts | None, top_n: int) -> list[list[str]]:
    if terms is None or counts is None:
        return []
    idf_all = TfidfTransformer().fit(counts.counts).idf_
    idf = idf_all[terms.cols]
    scored = terms.matrix.multiply(idf[None, :]).tocsr()
    out = []
    for i in range(scored.shape[0]):
        lo, hi = scored.indptr[i], scored.indptr[i + 1]
        vals, cols = scored.data[lo:hi], scored.indices[lo:hi]
        # highest score first; ties by word order so the baseline is deterministic
        order = np.lexsort((cols, -vals))[:top_n]
        out.append([str(terms.words[c]) for c in cols[order]])
    return out
