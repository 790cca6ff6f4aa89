"""BERTopic's KeyBERTInspired representation, a baseline, with each feature as a topic.

KeyBERTInspired (bertopic.representation.KeyBERTInspired, as BERTopic documents it), per topic:
1. c-TF-IDF over the topics as classes: tf = the class's term counts / its total (L1),
   idf = log(1 + A / f), A the mean number of words per class, f the word's count over all classes;
2. its `BERTOPIC_CANDIDATES` best words by c-TF-IDF are the candidates;
3. its `BERTOPIC_REPR_DOCS` representative documents: the topic's texts whose own c-TF-IDF
   vector is most cosine-similar to the topic's;
4. the topic embedding is the mean of those documents' embeddings, and the label is the
   candidates most cosine-similar to it.
Here the classes' counts are the features' candidate counts (candidates.DocTerms, the labeller's
own candidates), the texts are its top texts and their embeddings the store's, so nothing is
embedded that the labeller has not. bertopic itself is not a dependency: it would bring UMAP and
HDBSCAN for four lines of arithmetic.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix, diags

from ..scoring.scoring_sets import unit_vectors

BERTOPIC_CANDIDATES = 100  # KeyBERTInspired's nr_candidate_words
BERTOPIC_REPR_DOCS = 5  # KeyBERTInspired's nr_repr_docs


def class_tfidf(class_counts: csr_matrix) -> tuple[csr_matrix, np.ndarray]:
    """BERTopic's ClassTfidfTransformer (no bm25, no frequent-word reduction): ([C, V] c-TF-IDF, idf [V])."""
    X = class_counts.tocsr().astype(np.float64)
    freq = np.asarray(X.sum(0)).ravel()
    avg = X.sum() / max(X.shape[0], 1)
    idf = np.log(1 + avg / np.maximum(freq, 1e-12))
    totals = np.asarray(X.sum(1)).ravel()
    tf = diags(1 / np.maximum(totals, 1e-12)) @ X
    return (tf @ diags(idf)).tocsr(), idf


def lookup(matrix: csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """matrix[rows[i], cols[i]] for every i (0 where absent), by one search over the sorted
    (row, col) keys: no [pairs, V] row copies. matrix must have sorted indices."""
    n_cols = np.int64(matrix.shape[1])
    keys = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr)) * n_cols + matrix.indices
    want = rows.astype(np.int64) * n_cols + cols
    at = np.minimum(np.searchsorted(keys, want), max(len(keys) - 1, 0))
    return np.where(len(keys) and keys[at] == want, matrix.data[at] if len(keys) else 0, 0.0)


def best_per_row(row: np.ndarray, col: np.ndarray, score: np.ndarray, n: int) -> np.ndarray:
    """Positions of the n best entries (highest score, ties by col) of each row, grouped by row."""
    order = np.lexsort((col, -score, row))
    first = np.searchsorted(row[order], row[order], side="left")
    return order[np.arange(len(order)) - first < n]


def bertopic_labels(
    top_rows: np.ndarray,
    class_counts: csr_matrix,
    text_counts: csr_matrix,
    text_rows: np.ndarray,
    store_emb,
    words: np.ndarray,
    word_emb: np.ndarray,
    top_n: int,
) -> list[list[str]]:
    """top_rows [F, m] store rows (-1 padding); class_counts [F, V] each feature's candidate counts;
    text_counts [len(text_rows), V] each counted text's counts of the same candidates (text_rows:
    their sorted store rows); word_emb [V, d] -> each feature's KeyBERTInspired keywords.
    Vectorised over all features: (feature, top text) pairs for the representative documents,
    (feature, candidate) pairs for the words."""
    F = top_rows.shape[0]
    ctfidf, idf = class_tfidf(class_counts)
    ctfidf.sort_indices()
    # 3. representative documents: cosine of each top text's c-TF-IDF vector to its feature's
    valid = top_rows >= 0
    feature = np.repeat(np.arange(F), valid.sum(1))
    rows = top_rows[valid]
    docs = (text_counts.tocsr().astype(np.float64) @ diags(idf)).tocsr()[np.searchsorted(text_rows, rows)]
    dc = docs.tocoo()
    dot = np.bincount(dc.row, weights=dc.data * lookup(ctfidf, feature[dc.row], dc.col), minlength=len(rows))
    norms = (
        np.sqrt(np.asarray(docs.multiply(docs).sum(1)).ravel())
        * np.sqrt(np.asarray(ctfidf.multiply(ctfidf).sum(1)).ravel())[feature]
    )
    rep = best_per_row(feature, rows, dot / np.maximum(norms, 1e-12), BERTOPIC_REPR_DOCS)
    # 4. topic embedding: the mean of the representative documents' embeddings
    uniq, at = np.unique(rows[rep], return_inverse=True)
    emb = unit_vectors(store_emb[uniq])
    topic = np.zeros((F, emb.shape[1]), dtype=np.float32)
    np.add.at(topic, feature[rep], emb[at.ravel()])
    topic = unit_vectors(topic)
    # 2. candidates: each feature's best words by c-TF-IDF, then ranked by cosine to the topic
    coo = ctfidf.tocoo()
    cand = best_per_row(coo.row, coo.col, coo.data, BERTOPIC_CANDIDATES)
    f_of, w_of = coo.row[cand], coo.col[cand]
    unit_words = unit_vectors(word_emb)
    score = np.einsum("ij,ij->i", unit_words[w_of], topic[f_of])
    best = best_per_row(f_of, w_of, score, top_n)
    out: list[list[str]] = [[] for _ in range(F)]
    for f, w in zip(f_of[best], w_of[best]):
        out[f].append(str(words[w]))
    return out
