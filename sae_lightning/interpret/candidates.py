"""Candidate keyphrases: one CountVectorizer pass over the train texts, shared by KeyBERT and the
TF-IDF baseline so that both choose among exactly the same words.

Tokenising is the costly part of a vectorizer, and KeyBERT would tokenise every feature's joined
top texts twice (`fit`, then `transform`), 6144 x 15 sentences for a 6144-feature SAE. Here each
train text is tokenised once; a feature's document-term row is the sum of its top texts' rows
(`doc_term_matrix`), which equals vectorising the texts joined, minus the junk n-grams that would
straddle two texts.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.feature_extraction.text import CountVectorizer

from .labeling_config import LabelingConfig


def analyzer_params(cfg: LabelingConfig) -> dict:
    """What decides which n-grams a text has (the labels' keyword matching reuses it)."""
    return {"ngram_range": tuple(cfg.ngram_range), "stop_words": cfg.stop_words, "lowercase": True}


@dataclass
class TrainCounts:
    words: np.ndarray  # [V] every n-gram of the train texts (sklearn's sorted order)
    counts: csr_matrix  # [n_train, V]
    rows: np.ndarray  # [n_train] sorted store rows of the counts' rows

    @property
    def present(self) -> csr_matrix:
        """[n_train, V] 1 where the text holds the n-gram."""
        out = self.counts.copy()
        out.data[:] = 1
        return out

    def local(self, store_rows: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.rows, store_rows)


def count_train_texts(texts: np.ndarray, train_rows: np.ndarray, cfg: LabelingConfig) -> TrainCounts | None:
    """None when the train texts hold no candidate at all (only stop words or 1-letter tokens)."""
    rows = np.sort(np.asarray(train_rows, dtype=np.int64))
    vec = CountVectorizer(**analyzer_params(cfg), dtype=np.float32)
    try:
        counts = vec.fit_transform([str(t) for t in texts[rows]])
    except ValueError:  # sklearn: "empty vocabulary; perhaps the documents only contain stop words"
        return None
    return TrainCounts(words=vec.get_feature_names_out(), counts=counts.tocsr(), rows=rows)


def membership(top_rows: np.ndarray, counts: TrainCounts) -> csr_matrix:
    """[F, n_train] 0/1: which train texts are in each feature's top texts (-1 = padding)."""
    F = top_rows.shape[0]
    valid = top_rows >= 0
    r = np.repeat(np.arange(F), valid.sum(1))
    c = counts.local(top_rows[valid])
    return csr_matrix((np.ones(len(r), dtype=np.float32), (r, c)), shape=(F, counts.counts.shape[0]))


@dataclass
class DocTerms:
    matrix: csr_matrix  # [F, V] counts of each candidate in each feature's joined top texts
    words: np.ndarray  # [V] the candidates
    n_before: np.ndarray  # [F] distinct n-grams per document before min_df / max_features
    cols: np.ndarray  # [V] column of each candidate in TrainCounts.counts


def doc_term_matrix(top_rows: np.ndarray, counts: TrainCounts, cfg: LabelingConfig) -> DocTerms:
    """Candidates of the features' joined top texts.

    First the support rule: a candidate of feature i must occur in at least min(min_texts, s_i) of
    its top texts, s_i being the most any of its n-grams reaches (so every feature with words
    keeps some). A keyphrase found in one of fifteen texts names that text, not the feature, and
    dropping those cuts the candidates to embed about twentyfold (12.8k instead of 283k for a
    random 6144-feature SAE on the wiki sentences). min_texts=1 is plain KeyBERT. Then
    CountVectorizer's rules as KeyBERT would apply them: a candidate must occur in >= min_df documents;
    max_features keeps the most frequent over all documents."""
    member = membership(top_rows, counts)
    doc = (member @ counts.counts).tocsr()
    n_before = np.diff(doc.indptr)
    if cfg.min_texts > 1:
        support = (member @ counts.present).tocsr()  # top texts holding each n-gram
        need = np.minimum(cfg.min_texts, support.max(axis=1).toarray().ravel())
        support.data = (support.data >= np.repeat(need, np.diff(support.indptr))).astype(np.float32)
        doc = doc.multiply(support).tocsr()
        doc.eliminate_zeros()
    doc = doc.tocsc()
    df = np.diff(doc.indptr)  # documents containing each word (csc: nonzeros per column)
    keep = np.flatnonzero(df >= cfg.min_df)
    if cfg.max_features is not None and len(keep) > cfg.max_features:
        freq = np.asarray(doc[:, keep].sum(0)).ravel()
        keep = np.sort(keep[np.argsort(-freq, kind="stable")[: cfg.max_features]])
    return DocTerms(doc[:, keep].tocsr(), counts.words[keep], n_before, keep)


class PrecountedVectorizer(CountVectorizer):
    """A CountVectorizer whose counting is already done (see module doc). KeyBERT calls exactly
    fit(docs), get_feature_names_out() and transform(docs) on it; the candidate-word embeddings
    handed to KeyBERT are aligned with `words` row for row, which is what KeyBERT requires."""

    def set_counts(self, matrix: csr_matrix, words: np.ndarray) -> PrecountedVectorizer:
        self.matrix_, self.words_ = matrix, words
        self.vocabulary_ = {w: i for i, w in enumerate(words)}
        return self

    def fit(self, raw_documents, y=None):
        self._check_docs(raw_documents)
        return self

    def transform(self, raw_documents):
        self._check_docs(raw_documents)
        return self.matrix_

    def get_feature_names_out(self, input_features=None):
        return self.words_

    def _check_docs(self, docs) -> None:
        if len(docs) != self.matrix_.shape[0]:
            raise ValueError(f"PrecountedVectorizer holds counts of {self.matrix_.shape[0]} documents, got {len(docs)}")
