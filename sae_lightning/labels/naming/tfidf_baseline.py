"""TF-IDF of the candidates in each feature's joined top texts, and the baseline label made of the
top terms by that score.

Same candidates as KeyBERT (candidates.DocTerms), idf over the train texts as sklearn's
TfidfTransformer computes it (TrainCounts.idf): the numbers `TfidfVectorizer(...).fit(train_texts)`
would give. Row normalisation is skipped: it does not change the order within a row.
The same scores are the evidence term of the KeyBERT rerank (evidence_rerank.py).
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix

from .candidates import DocTerms, TrainCounts


def tfidf_scores(terms: DocTerms, counts: TrainCounts) -> csr_matrix:
    """[F, V] count of each candidate in the feature's top texts x its idf over the train texts."""
    idf = counts.idf()[terms.cols]
    return terms.matrix.multiply(idf[None, :]).tocsr()


def tfidf_top_terms(scored: csr_matrix | None, words: np.ndarray, top_n: int) -> list[list[str]]:
    """Each row's top_n words by score (`tfidf_scores`); [] when there are no candidates at all."""
    if scored is None:
        return []
    out = []
    for i in range(scored.shape[0]):
        lo, hi = scored.indptr[i], scored.indptr[i + 1]
        vals, cols = scored.data[lo:hi], scored.indices[lo:hi]
        # highest score first; ties by word order so the baseline is deterministic
        order = np.lexsort((cols, -vals))[:top_n]
        out.append([str(words[c]) for c in cols[order]])
    return out
