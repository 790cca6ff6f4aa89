"""The seed project's labelling method, a baseline: KeyBERT on each top text, keywords merged.

The project this one grew from labelled a feature by running KeyBERT (cosine of each candidate to
the document, no MMR, `SEED_PER_TEXT` keywords) on each of its top texts separately, merging
keywords whose embeddings are alike (cosine >= `SEED_MERGE_COSINE`), and ranking the merged
keywords by mean similarity x log(1 + number of texts that gave them).

Here KeyBERT's per-document step runs vectorised over every distinct top text at once: a text's
embedding is the store's (what KeyBERT's model would compute for it), its candidates are its own
n-grams among the phrases the labeller embeds (the cached candidates; tests/test_label_naming.py
checks the picks equal KeyBERT's own), so the baseline costs about a second and embeds nothing.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix

from ..scoring.scoring_sets import unit_vectors

SEED_PER_TEXT = 5  # KeyBERT's default top_n
SEED_MERGE_COSINE = 0.8  # keywords at least this alike are one keyword
SEED_MERGE_POOL = 30  # each feature's most frequent keywords that are merged and ranked (bounds the cost)
PAIR_BLOCK = 1 << 16  # (text, candidate) cosines computed at a time


def per_text_keywords(
    present: csr_matrix, text_emb: np.ndarray, word_emb: np.ndarray, per_text: int = SEED_PER_TEXT
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """present [T, V] (> 0 where text t holds word v), text_emb [T, d], word_emb [V, d] -> per text
    (word columns, cosines) of its `per_text` best candidates by cosine, best first: KeyBERT's
    extract_keywords(use_mmr=False) on each text."""
    present = present.tocsr()
    present.sort_indices()
    rows = np.repeat(np.arange(present.shape[0]), np.diff(present.indptr))
    cols = present.indices
    unit_text, unit_word = unit_vectors(text_emb), unit_vectors(word_emb)
    sims = np.empty(len(cols), dtype=np.float32)
    for s in range(0, len(cols), PAIR_BLOCK):  # gathered [block, d] pairs: bounded memory
        b = slice(s, s + PAIR_BLOCK)
        sims[b] = np.einsum("ij,ij->i", unit_text[rows[b]], unit_word[cols[b]])
    order = np.lexsort((cols, -sims, rows))  # per text, best first (ties by column)
    rank = np.arange(len(order)) - present.indptr[rows[order]]
    keep = order[rank < per_text]
    bounds = np.searchsorted(rows[keep], np.arange(present.shape[0] + 1))
    kept_cols, kept_sims = cols[keep], sims[keep]
    return (
        [kept_cols[a:b] for a, b in zip(bounds[:-1], bounds[1:])],
        [kept_sims[a:b] for a, b in zip(bounds[:-1], bounds[1:])],
    )


def merge_keywords(cols: np.ndarray, sims: np.ndarray, unit_words: np.ndarray, top_n: int) -> list[int]:
    """One feature's per-text picks (word column, cosine), pooled -> the top_n columns by
    mean cosine x log(1 + count), alike keywords (cosine >= SEED_MERGE_COSINE) merged into the one
    picked most often. Only its SEED_MERGE_POOL most frequent keywords compete: a keyword picked
    for fewer texts than those is outranked by log(1 + count) unless far more alike to its texts."""
    if not len(cols):
        return []
    words, inverse, count = np.unique(cols, return_inverse=True, return_counts=True)
    total = np.bincount(inverse, weights=sims)
    order = np.lexsort((words, -count))[:SEED_MERGE_POOL]  # the most frequent keyword leads its group
    words, count, total = words[order], count[order], total[order]
    emb = unit_words[words]
    alike = emb @ emb.T >= SEED_MERGE_COSINE
    head = np.full(len(words), -1)
    for i in range(len(words)):
        if head[i] < 0:
            head[(head < 0) & alike[i]] = i
    n_group = np.bincount(head, weights=count, minlength=len(words))
    s_group = np.bincount(head, weights=total, minlength=len(words))
    leaders = np.flatnonzero(n_group > 0)
    score = s_group[leaders] / n_group[leaders] * np.log1p(n_group[leaders])
    best = leaders[np.lexsort((leaders, -score))][:top_n]
    return [int(words[i]) for i in best]


def seed_labels(
    top_rows: np.ndarray,
    present: csr_matrix,
    present_rows: np.ndarray,
    store_emb,
    words: np.ndarray,
    word_emb: np.ndarray,
    top_n: int,
) -> list[list[str]]:
    """top_rows [F, m] store rows (-1 padding); present [len(present_rows), V] which candidate
    `words` each counted text holds (present_rows: their sorted store rows); store_emb: the
    store's text embeddings -> each feature's seed-method keywords."""
    rows = np.unique(top_rows[top_rows >= 0])
    local = np.searchsorted(present_rows, rows)
    picks, sims = per_text_keywords(present[local], np.asarray(store_emb[rows], dtype=np.float32), word_emb)
    unit_words = unit_vectors(word_emb)
    out = []
    for r in top_rows:
        at = np.searchsorted(rows, r[r >= 0])
        cols = np.concatenate([picks[i] for i in at]) if len(at) else np.zeros(0, np.int64)
        s = np.concatenate([sims[i] for i in at]) if len(at) else np.zeros(0)
        out.append([str(words[c]) for c in merge_keywords(cols, s, unit_words, top_n)])
    return out
