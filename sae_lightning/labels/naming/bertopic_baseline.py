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


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def bertopic_labels(top_rows: np.ndarray, class_counts: csr_matrix, text_counts: csr_matrix, text_rows: np.ndarray,
                    store_emb, words: np.ndarray, word_emb: np.ndarray, top_n: int) -> list[list[str]]:
    """top_rows [F, m] store rows (-1 padding); class_counts [F, V] each feature's candidate counts;
    text_counts [len(text_rows), V] each counted text's counts of the same candidates (text_rows:
    their sorted store rows); word_emb [V, d] -> each feature's KeyBERTInspired keywords."""
    ctfidf, idf = class_tfidf(class_counts)
    unit_words = _unit(np.asarray(word_emb, dtype=np.float32))
    text_tfidf = (text_counts.tocsr().astype(np.float64) @ diags(idf)).tocsr()
    out = []
    for f, r in enumerate(top_rows):
        row = ctfidf[f]
        if not row.nnz:
            out.append([])
            continue
        cand = row.indices[np.lexsort((row.indices, -row.data))][:BERTOPIC_CANDIDATES]
        rows = r[r >= 0]
        docs = text_tfidf[np.searchsorted(text_rows, rows)]
        sim = np.asarray((docs @ row.T).todense()).ravel() / np.maximum(
            np.sqrt(np.asarray(docs.multiply(docs).sum(1)).ravel()) * np.sqrt(row.multiply(row).sum()), 1e-12)
        rep = rows[np.argsort(-sim, kind="stable")[:BERTOPIC_REPR_DOCS]]
        topic = _unit(_unit(np.asarray(store_emb[np.sort(rep)], dtype=np.float32)).mean(0))
        score = unit_words[cand] @ topic
        out.append([str(words[c]) for c in cand[np.lexsort((cand, -score))][:top_n]])
    return out
