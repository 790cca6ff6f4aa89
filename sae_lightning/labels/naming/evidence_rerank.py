"""KeyBERT's shortlist reranked by evidence: of the keywords closest in meaning to a feature, those
that also recur, and are specific, in the texts that activate it.

KeyBERT ranks candidates by cosine(keyword, feature document) alone. That finds the feature's
meaning, but the closest keyword is often a phrase that appears in one or two of the top texts,
so the label says little about which texts the feature fires on (low keyword recall). TF-IDF has
the opposite strength. Each of KeyBERT's `shortlist` best candidates gets

    relevance = cosine × (tfidf / the feature's largest tfidf) ** evidence_power

with tfidf the candidate's TF-IDF in the feature's joined top texts (tfidf_baseline.tfidf_scores),
and MMR with KeyBERT's rule and `diversity` picks top_n of them. evidence_power = 0 leaves
KeyBERT's own choice.

Two rules keep a label free of repeats and of noise:
- containment: a phrase inside another shortlisted one ("san" in "san francisco") is dropped when
  the longer phrase is held by as many of the top texts' documents (it says the same, better),
  and no two picked keywords ever contain one another ("parallel computing, parallel");
- one word in two forms: two phrases whose words share their stems or word family ("apple,
  apples", "event, events", "history, historians"; phrases.same_stems) are never both picked: the
  more relevant one names it. Allowed, they filled 147 of the default run's 3,072 labels with a
  repeat;
- evidence decides the length: a keyword after the first is kept only while its relevance is at
  least `min_relevance` times the first's, so one strong keyword is not padded with two weak ones.

On the default run (wiki_all, TopK 3072/k32; validation scores, scoring/auroc.py; means):
            label_auroc_hard  precision  recall
  KeyBERT         0.543          0.310     0.072
  reranked        0.545          0.298     0.103   (shortlist 20, evidence_power 0.5, diversity 0.3)
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix

from .phrases import same_stems, words_within

Keywords = list[tuple[str, float]]  # (keyword, KeyBERT's cosine), KeyBERT's output format


def mmr(
    relevance: np.ndarray, unit_emb: np.ndarray, top_n: int, diversity: float, conflicts: np.ndarray | None = None
) -> list[int]:
    """Maximal marginal relevance as KeyBERT computes it (keybert._mmr), but over a given relevance
    instead of cosine(word, document): the positions picked, in order. conflicts [n, n] (optional):
    True where two candidates may not both be picked."""
    picked = [int(np.argmax(relevance))]
    rest = [j for j in range(len(relevance)) if j != picked[0]]
    similarity = unit_emb @ unit_emb.T
    while len(picked) < top_n:
        if conflicts is not None:
            rest = [j for j in rest if not conflicts[j, picked[-1]]]
        if not rest:
            break
        gain = (1 - diversity) * relevance[rest] - diversity * similarity[np.ix_(rest, picked)].max(1)
        picked.append(rest.pop(int(np.argmax(gain))))
    return picked


def containment(phrases: list[str], support: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(redundant [n]: inside a phrase held by at least as many documents, conflicts [n, n]: one
    phrase inside the other, or the two forms of one phrase) for the shortlisted phrases and their
    document support."""
    n = len(phrases)
    inside = np.array([[words_within(a, b) for b in phrases] for a in phrases]).reshape(n, n)
    forms = np.array([[same_stems(a, b) for b in phrases] for a in phrases]).reshape(n, n)
    redundant = (inside & (support[None, :] >= support[:, None])).any(1)
    return redundant, inside | inside.T | forms


def _row(matrix: csr_matrix, i: int, cols: np.ndarray) -> np.ndarray:
    lo, hi = matrix.indptr[i], matrix.indptr[i + 1]
    return matrix.data[lo:hi][np.searchsorted(matrix.indices[lo:hi], cols)]  # every col is a candidate of i


def rerank(
    shortlists: list[Keywords],
    evidence: csr_matrix,
    words: np.ndarray,
    word_emb: np.ndarray,
    top_n: int,
    power: float,
    diversity: float | None,
    support: csr_matrix | None = None,
    min_relevance: float = 0.0,
) -> list[Keywords]:
    """shortlists[i]: KeyBERT's candidates for row i of `evidence` [F, V] (columns = `words`, rows
    aligned with `word_emb`); diversity None: no MMR, the top_n by relevance. support [F, V]: the
    documents holding each candidate (candidates.DocTerms.support; None: no containment rule)."""
    column = {str(w): j for j, w in enumerate(words)}
    unit = word_emb / np.maximum(np.linalg.norm(word_emb, axis=1, keepdims=True), 1e-12)
    evidence = evidence.tocsr()
    evidence.sort_indices()
    if support is not None:
        support = support.tocsr()
        support.sort_indices()
    out: list[Keywords] = []
    for i, found in enumerate(shortlists):
        if not found:
            out.append([])
            continue
        if support is not None:
            docs = _row(support, i, np.array([column[w] for w, _ in found]))
            redundant, conflicts = containment([w for w, _ in found], docs)
            found = [k for k, r in zip(found, redundant) if not r]
            conflicts = conflicts[np.ix_(~redundant, ~redundant)]
        else:
            conflicts = None
        cols = np.array([column[w] for w, _ in found])
        cosine = np.array([s for _, s in found], dtype=np.float64)
        tfidf = _row(evidence, i, cols)
        relevance = cosine * (tfidf / tfidf.max()) ** power
        if diversity is None:
            order = np.argsort(-relevance, kind="stable")
            picked: list[int] = []
            for j in order:
                if len(picked) < top_n and (conflicts is None or not conflicts[j, picked].any()):
                    picked.append(int(j))
        else:
            picked = mmr(relevance, unit[cols], top_n, diversity, conflicts)
        best = relevance[picked[0]]
        out.append([found[j] for k, j in enumerate(picked) if k == 0 or relevance[j] >= min_relevance * best])
    return out
