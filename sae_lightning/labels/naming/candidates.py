"""Candidate keyphrases: one CountVectorizer pass over the train texts, shared by KeyBERT and the
TF-IDF baseline so that both choose among exactly the same words.

Tokenising is the costly part of a vectorizer, and KeyBERT would tokenise every feature's joined
top texts twice (`fit`, then `transform`), 6144 x 15 sentences for a 6144-feature SAE. Here each
train text is tokenised once; a feature's document-term row is the sum of its top texts' rows
(`doc_term_matrix`), which equals vectorising the texts joined, minus the junk n-grams that would
straddle two texts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix, diags
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer

from ...schemas.labeling import LabelingConfig
from .phrases import PhraseAnalyzer


def analyzer_settings(cfg: LabelingConfig) -> dict:
    """What decides which n-grams a text has (phrases.py), as plain values (cache keys hash them)."""
    return {"ngram_range": list(cfg.ngram_range), "stop_words": cfg.stop_words, "phrases": "adjacent"}


def analyzer_params(cfg: LabelingConfig) -> dict:
    """CountVectorizer arguments that give a text's candidate phrases (keyword matching reuses them)."""
    return {"analyzer": PhraseAnalyzer(tuple(cfg.ngram_range), cfg.stop_words)}


DF_BLOCK = 20_000  # train texts tokenised at a time for the document frequencies


@dataclass
class TrainCounts:
    words: np.ndarray  # [V] every n-gram of the counted texts (sklearn's sorted order)
    counts: csr_matrix  # [n_counted, V]
    rows: np.ndarray  # [n_counted] sorted store rows of the counts' rows
    df: np.ndarray | None = None  # [V] train texts holding each word; None: the counted texts are the train split
    n_docs: int | None = None  # train texts behind df

    def idf(self) -> np.ndarray:
        """[V] smoothed idf over the train split, exactly sklearn's TfidfTransformer (float32 here)."""
        if self.df is None:
            return TfidfTransformer().fit(self.counts).idf_
        idf = np.full(len(self.df), self.n_docs + 1, dtype=np.float32) / (self.df.astype(np.float32) + 1)
        return np.log(idf) + np.float32(1.0)

    def subset(self, store_rows: np.ndarray) -> TrainCounts:
        """The counts of some of the counted rows, as if only those texts had been counted (idf too)."""
        rows = np.unique(np.asarray(store_rows, dtype=np.int64))
        return TrainCounts(words=self.words, counts=self.counts[self.local(rows)], rows=rows)

    @property
    def present(self) -> csr_matrix:
        """[n_train, V] 1 where the text holds the n-gram."""
        out = self.counts.copy()
        out.data[:] = 1
        return out

    def local(self, store_rows: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.rows, store_rows)


def count_train_texts(
    texts: np.ndarray, train_rows: np.ndarray, cfg: LabelingConfig, rows: np.ndarray | None = None
) -> TrainCounts | None:
    """The n-gram counts of the texts at `rows` (the features' top texts; None: every train text)
    and, when those are not the whole split, each of their words' document frequency over the
    train split, streamed in blocks: so memory follows the top texts, not the corpus, and the
    TF-IDF is the one over the whole train split. None when the counted texts hold no candidate
    at all (only stop words or 1-letter tokens)."""
    train = np.unique(np.asarray(train_rows, dtype=np.int64))
    rows = train if rows is None else np.unique(np.asarray(rows, dtype=np.int64))
    vec = CountVectorizer(**analyzer_params(cfg), dtype=np.float32)
    try:
        counts = vec.fit_transform([str(t) for t in texts[rows]])
    except ValueError:  # sklearn: "empty vocabulary; perhaps the documents only contain stop words"
        return None
    words = vec.get_feature_names_out()
    if np.array_equal(rows, train):
        return TrainCounts(words=words, counts=counts.tocsr(), rows=rows)
    binary = CountVectorizer(**analyzer_params(cfg), vocabulary=vec.vocabulary_, binary=True, dtype=np.float32)
    df = np.zeros(len(words), np.int64)
    for s in range(0, len(train), DF_BLOCK):
        block = binary.transform([str(t) for t in texts[train[s : s + DF_BLOCK]]]).tocsc()
        df += np.diff(block.indptr)
    return TrainCounts(words=words, counts=counts.tocsr(), rows=rows, df=df, n_docs=int(len(train)))


def membership(top_rows: np.ndarray, counts: TrainCounts, weights: np.ndarray | None = None) -> csr_matrix:
    """[F, n_train]: which train texts are in each feature's top texts (-1 = padding), with the
    given weight per (feature, slot) or 1."""
    F = top_rows.shape[0]
    valid = top_rows >= 0
    r = np.repeat(np.arange(F), valid.sum(1))
    c = counts.local(top_rows[valid])
    w = np.ones(len(r), dtype=np.float32) if weights is None else weights[valid].astype(np.float32)
    return csr_matrix((w, (r, c)), shape=(F, counts.counts.shape[0]))


NUMBER_TOKEN = re.compile(r"^\d[\d,.]*(s|st|nd|rd|th)?$")  # 848, 2024, 000, 1990s, 19th


def is_bare_number(phrase: str) -> bool:
    """True when every word of the candidate is a number ("2024", "000", "1990s", "19th 20th")."""
    return all(NUMBER_TOKEN.match(w) for w in str(phrase).split())


def number_share(member: csr_matrix, counts: TrainCounts, numeric: np.ndarray | None = None) -> np.ndarray:
    """[F] share of number tokens among the (non-stop-word) word tokens of each feature's texts;
    numeric: is_bare_number per counts.words, if already known."""
    unigram = np.array([" " not in str(w) for w in counts.words])
    if numeric is None:
        numeric = np.array([is_bare_number(w) for w in counts.words])
    number = unigram & numeric
    tokens = member @ counts.counts[:, unigram]
    nums = member @ counts.counts[:, number]
    total = np.asarray(tokens.sum(1)).ravel()
    return np.where(total > 0, np.asarray(nums.sum(1)).ravel() / np.maximum(total, 1), 0.0)


def document_support(top_rows: np.ndarray, counts: TrainCounts, doc_codes: np.ndarray | None) -> csr_matrix:
    """[F, V] how many distinct source documents among each feature's top texts hold each n-gram
    (any of a document's texts counts for it); doc_codes None: every text is its own document."""
    F = top_rows.shape[0]
    valid = top_rows >= 0
    feature = np.repeat(np.arange(F), valid.sum(1))
    rows = top_rows[valid]
    doc = doc_codes[rows] if doc_codes is not None else rows
    pair, pair_of = np.unique(np.stack([feature, doc], 1), axis=0, return_inverse=True)
    pair_of = pair_of.ravel()
    texts = csr_matrix(
        (np.ones(len(rows), np.float32), (pair_of, counts.local(rows))), shape=(len(pair), counts.counts.shape[0])
    )
    held = (texts @ counts.present).tocsr()  # [pairs, V] > 0 where some text of the document holds it
    held.data[:] = 1
    group = csr_matrix((np.ones(len(pair), np.float32), (pair[:, 0], np.arange(len(pair)))), shape=(F, len(pair)))
    return (group @ held).tocsr()


@dataclass
class DocTerms:
    matrix: csr_matrix  # [F, V] activation-weighted counts of each candidate in the feature's top texts
    words: np.ndarray  # [V] the candidates
    n_before: np.ndarray  # [F] distinct n-grams per document before the support rule, min_df, max_features
    cols: np.ndarray  # [V] column of each candidate in TrainCounts.counts
    support: csr_matrix  # [F, V] distinct source documents among the top texts holding the candidate


def doc_term_matrix(
    top_rows: np.ndarray,
    counts: TrainCounts,
    cfg: LabelingConfig,
    doc_codes: np.ndarray | None = None,
    top_acts: np.ndarray | None = None,
) -> DocTerms:
    """Candidates of the features' top texts.

    Support rule: a candidate of feature i must occur in at least `min_texts` of its top texts,
    counted per source document when doc_codes are given (source_documents.py: a keyword of
    one article's sentences names that article, not the feature; None: per text). A keyphrase of
    one text names that text, not the feature; a feature with
    no recurring candidate gets no label (its reason says why). Numbers rule: bare-number
    candidates ("2024", "000") are dropped unless at least
    `numbers_min_share` of the word tokens of the feature's top texts are numbers (the feature is
    about numbers). Counts are weighted by activation relative to the feature's top text
    (top_acts; None: unweighted), so the strongest texts weigh most in TF-IDF and the rerank.
    Then CountVectorizer's rules as KeyBERT would apply them: >= min_df documents; max_features
    keeps the most frequent."""
    weights = None
    if top_acts is not None:
        weights = top_acts / np.maximum(top_acts[:, :1], 1e-12)
    doc = (membership(top_rows, counts, weights) @ counts.counts).tocsr()
    n_before = np.diff(doc.indptr)
    support = document_support(top_rows, counts, doc_codes)  # distinct documents holding each n-gram
    keep = (support >= cfg.min_texts).astype(np.float32).tocsr()
    numeric = np.array([is_bare_number(w) for w in counts.words])
    about_numbers = number_share(membership(top_rows, counts), counts, numeric) >= cfg.numbers_min_share
    if numeric.any():  # keep - (rows not about numbers) x keep x (number columns)
        keep = (keep - diags((~about_numbers).astype(np.float32)) @ keep @ diags(numeric.astype(np.float32))).tocsr()
    doc = doc.multiply(keep).tocsr()
    doc.eliminate_zeros()
    support = support.multiply(doc > 0).tocsr()
    doc = doc.tocsc()
    df = np.diff(doc.indptr)  # documents containing each word (csc: nonzeros per column)
    cols = np.flatnonzero(df >= cfg.min_df)
    if cfg.max_features is not None and len(cols) > cfg.max_features:
        freq = np.asarray(doc[:, cols].sum(0)).ravel()
        cols = np.sort(cols[np.argsort(-freq, kind="stable")[: cfg.max_features]])
    return DocTerms(doc[:, cols].tocsr(), counts.words[cols], n_before, cols, support.tocsc()[:, cols].tocsr())


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
