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

On the default run (wiki_all, TopK 3072/k32; validation scores, scoring/auroc.py; means):
            label_auroc_hard  precision  recall
  KeyBERT         0.543          0.310     0.072
  reranked        0.545          0.298     0.103   (shortlist 20, evidence_power 0.5, diversity 0.3)
"""
from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix

Keywords = list[tuple[str, float]]  # (keyword, KeyBERT's cosine), KeyBERT's output format


def mmr(relevance: np.ndarray, unit_emb: np.ndarray, top_n: int, diversity: float) -> list[int]:
    """Maximal marginal relevance as KeyBERT computes it (keybert._mmr), but over a given relevance
    instead of cosine(word, document): the positions picked, in order."""
    picked = [int(np.argmax(relevance))]
    rest = [j for j in range(len(relevance)) if j != picked[0]]
    similarity = unit_emb @ unit_emb.T
    while rest and len(picked) < top_n:
        gain = (1 - diversity) * relevance[rest] - diversity * similarity[np.ix_(rest, picked)].max(1)
        picked.append(rest.pop(int(np.argmax(gain))))
    return picked


def rerank(shortlists: list[Keywords], evidence: csr_matrix, words: np.ndarray, word_emb: np.ndarray,
           top_n: int, power: float, diversity: float | None) -> list[Keywords]:
    """shortlists[i]: KeyBERT's candidates for row i of `evidence` [F, V] (columns = `words`, rows
    aligned with `word_emb`); diversity None: no MMR, the top_n by relevance."""
    column = {str(w): j for j, w in enumerate(words)}
    unit = word_emb / np.maximum(np.linalg.norm(word_emb, axis=1, keepdims=True), 1e-12)
    evidence = evidence.tocsr()
    evidence.sort_indices()
    out: list[Keywords] = []
    for i, found in enumerate(shortlists):
        if not found:
            out.append([])
            continue
        cols = np.array([column[w] for w, _ in found])
        cosine = np.array([s for _, s in found], dtype=np.float64)
        lo, hi = evidence.indptr[i], evidence.indptr[i + 1]
        at = np.searchsorted(evidence.indices[lo:hi], cols)  # every shortlisted word is a candidate of i
        tfidf = evidence.data[lo:hi][at]
        relevance = cosine * (tfidf / tfidf.max()) ** power
        if diversity is None:
            picked = list(np.argsort(-relevance, kind="stable")[:top_n])
        else:
            picked = mmr(relevance, unit[cols], top_n, diversity)
        out.append([found[j] for j in picked])
    return out
