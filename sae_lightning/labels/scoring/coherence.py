"""Coherence of a feature: how much more alike its activating texts are than random texts.

    coherence = (mean pairwise cosine of its top train texts - mu) / sigma

over its top texts from DISTINCT source documents (the first, most activating, text of each;
source_documents.py), so that one article's sentences cannot make a feature look coherent. The
baseline mu, sigma are the mean and the standard deviation of the cosine of a random pair of
train texts from distinct documents (`n_baseline_pairs` seeded pairs). So coherence is an effect
size in units of the spread of unrelated pairs: 0 = its texts are as alike as random ones, and it
does not grow with the number of texts as a z-test would (a feature with 30 top texts is not more
coherent than one with 8 for that reason alone). Cosines use the store's embeddings, i.e. the
model that embedded the texts. A feature with fewer than `min_docs` distinct documents among its
top texts gets NaN (too rare to tell; verdict `weak`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..naming.source_documents import first_per_document
from .scoring_sets import unit_vectors


@dataclass
class Coherence:
    score: np.ndarray  # [F] float64, NaN where fewer than min_docs distinct documents
    n_docs: np.ndarray  # [F] distinct documents among the top texts
    doc_rows: np.ndarray  # [F, m] the texts it is measured on: the first top text of each document, -1 padding
    baseline_mean: float  # mu: mean cosine of random pairs of train texts
    baseline_std: float  # sigma


def random_pair_cosines(embeddings, train_rows: np.ndarray, codes: np.ndarray, n_pairs: int, seed: int) -> np.ndarray:
    """Cosines of n_pairs seeded random pairs of train texts from distinct documents."""
    rng = np.random.default_rng(seed)
    a, b = rng.choice(train_rows, n_pairs), rng.choice(train_rows, n_pairs)
    keep = codes[a] != codes[b]
    a, b = a[keep], b[keep]
    rows, inv = np.unique(np.r_[a, b], return_inverse=True)
    unit = unit_vectors(embeddings[rows])
    return np.einsum("ij,ij->i", unit[inv[: len(a)]], unit[inv[len(a) :]]).astype(np.float64)


def mean_pairwise_cosine(unit: np.ndarray) -> float:
    """Mean cosine over the n(n-1)/2 distinct pairs of unit rows: (|sum|^2 - n) / (n(n-1))."""
    n = len(unit)
    s = unit.sum(0, dtype=np.float64)
    return float((s @ s - n) / (n * (n - 1)))


def feature_coherence(
    top_rows: np.ndarray,
    embeddings,
    train_rows: np.ndarray,
    codes: np.ndarray,
    min_docs: int = 3,
    n_baseline_pairs: int = 20000,
    seed: int = 0,
) -> Coherence:
    """top_rows [F, m] store rows of each feature's top train texts, best first (-1 padding);
    codes: document code per store row (source_documents.document_codes)."""
    distinct = first_per_document(top_rows, codes)
    n_docs = (distinct >= 0).sum(1)
    pairs = random_pair_cosines(embeddings, np.asarray(train_rows), codes, n_baseline_pairs, seed)
    if len(pairs):
        mu, sigma = float(pairs.mean()), float(max(pairs.std(), 1e-6))
    else:  # no two train texts of distinct documents (a one-text corpus): no baseline, so every score NaN
        mu = sigma = float("nan")  # without numpy's four RuntimeWarnings about an empty mean on stderr
    score = np.full(len(top_rows), np.nan)
    used = np.unique(distinct[distinct >= 0])
    if len(used):
        unit = unit_vectors(embeddings[used])
        local = np.searchsorted(used, np.maximum(distinct, 0))
        for f in np.flatnonzero(n_docs >= max(min_docs, 2)):
            score[f] = (mean_pairwise_cosine(unit[local[f, : n_docs[f]]]) - mu) / sigma
    return Coherence(
        score=score, n_docs=n_docs.astype(np.int64), doc_rows=distinct, baseline_mean=mu, baseline_std=sigma
    )
