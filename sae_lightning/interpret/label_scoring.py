"""Label quality with no LLM (docs/concepts.md "Label metrics"), vectorised over features.

For each feature, positives are its top-activating validation texts and negatives a seeded sample
of validation texts where it is exactly 0 (`activation_scan.scoring_sets`); the texts that produced
the label (train split) are never used.

- `label_auroc`: AUROC of cosine(embed(label), embedding(text)) separating positives from
  negatives, computed exactly as the Mann-Whitney statistic over all (positive, negative) pairs,
  ties counted one half. Text embeddings are the store's; the label is embedded by the same model.
- `keyword_hit_lift`: share of positives that contain any label keyword divided by that share
  among negatives. "Contains" means the keyword is one of the text's candidate n-grams under the
  labelling vectorizer's analyzer: case-insensitive, whole words, stop words dropped exactly as
  when the keyword was extracted (so "history art", drawn from "history of art", matches that text).
  Both shares are smoothed by adding one text's weight in the pooled sample,
  eps = 1 / (n_pos + n_neg): lift = (share_pos + eps) / (share_neg + eps). Thus 0/0 -> 1 (no
  evidence either way), x/0 stays finite (at most n_pos + n_neg + 1), and lift is >= 0.
A feature without a label, without any positive or without any negative gets NaN.
"""
from __future__ import annotations

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer

FEATURE_BLOCK = 1024  # features per block: bounds the [block, rows] similarity matrix


def mann_whitney_auroc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """pos [F, P], neg [F, N] scores with NaN for missing entries -> AUROC [F] (NaN if a side is empty)."""
    pv, nv = ~np.isnan(pos), ~np.isnan(neg)
    out = np.full(pos.shape[0], np.nan)
    for start in range(0, pos.shape[0], 256):  # [256, P, N] comparisons at a time
        p, n = pos[start:start + 256, :, None], neg[start:start + 256, None, :]
        valid = pv[start:start + 256, :, None] & nv[start:start + 256, None, :]
        wins = ((p > n) + 0.5 * (p == n)) * valid
        pairs = valid.sum((1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:start + 256] = np.where(pairs > 0, wins.sum((1, 2)) / pairs, np.nan)
    return out


def smoothed_lift(pos_hits: np.ndarray, n_pos: np.ndarray, neg_hits: np.ndarray, n_neg: np.ndarray) -> np.ndarray:
    """Hit counts and set sizes per feature -> keyword_hit_lift (see module doc for the smoothing)."""
    n_pos, n_neg = n_pos.astype(np.float64), n_neg.astype(np.float64)
    ok = (n_pos > 0) & (n_neg > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        eps = 1.0 / (n_pos + n_neg)
        lift = (pos_hits / n_pos + eps) / (neg_hits / n_neg + eps)
    return np.where(ok, lift, np.nan)


class LabelScorer:
    """Scores any number of label sets (KeyBERT, random, TF-IDF) on the same validation sets."""

    def __init__(self, store_embeddings: np.ndarray, texts: np.ndarray, pos_rows: np.ndarray,
                 neg_rows: np.ndarray, vectorizer_params: dict) -> None:
        # Only the validation rows some feature uses are read, embedded-in-store and tokenised.
        used = np.union1d(pos_rows[pos_rows >= 0], neg_rows[neg_rows >= 0])
        self.rows = used
        emb = np.asarray(store_embeddings[used], dtype=np.float32)
        self.text_emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        self.texts = [str(t) for t in texts[used]]
        self.pos_local = np.where(pos_rows >= 0, np.searchsorted(used, np.maximum(pos_rows, 0)), -1)
        self.neg_local = np.where(neg_rows >= 0, np.searchsorted(used, np.maximum(neg_rows, 0)), -1)
        self.vectorizer_params = vectorizer_params

    def auroc(self, label_emb: np.ndarray, has_label: np.ndarray) -> np.ndarray:
        """label_emb [F, d] (rows of unlabelled features are ignored) -> label_auroc [F]."""
        F = label_emb.shape[0]
        if not len(self.rows):  # no validation texts (val_fraction=0): nothing can be scored
            return np.full(F, np.nan)
        norm = np.maximum(np.linalg.norm(label_emb, axis=1, keepdims=True), 1e-12)
        lab = (label_emb / norm).astype(np.float32)
        pos = np.full(self.pos_local.shape, np.nan)
        neg = np.full(self.neg_local.shape, np.nan)
        for s in range(0, F, FEATURE_BLOCK):
            sim = lab[s:s + FEATURE_BLOCK] @ self.text_emb.T  # [block, rows]
            for local, out in ((self.pos_local, pos), (self.neg_local, neg)):
                idx = local[s:s + FEATURE_BLOCK]
                got = np.take_along_axis(sim, np.maximum(idx, 0), axis=1)
                out[s:s + FEATURE_BLOCK] = np.where(idx >= 0, got, np.nan)
        result = mann_whitney_auroc(pos, neg)
        result[~has_label] = np.nan
        return result

    def lift(self, keywords: list[list[str]]) -> np.ndarray:
        """Per feature its label keywords (empty: unlabelled) -> keyword_hit_lift [F]."""
        F = len(keywords)
        vocab = sorted({k for kws in keywords for k in kws})
        if not vocab or not len(self.rows):
            return np.full(F, np.nan)
        col = {k: i for i, k in enumerate(vocab)}
        # Same analyzer settings as the candidates, fixed vocabulary: [rows, keywords] presence.
        X = CountVectorizer(vocabulary=vocab, binary=True, **self.vectorizer_params).transform(self.texts).tocsc()
        ind = [col[k] for kws in keywords for k in kws]
        ptr = np.cumsum([0] + [len(kws) for kws in keywords])
        from scipy.sparse import csr_matrix

        L = csr_matrix((np.ones(len(ind)), ind, ptr), shape=(F, len(vocab)))
        hits_pos, hits_neg = np.zeros(F), np.zeros(F)
        for s in range(0, F, FEATURE_BLOCK):
            H = (X @ L[s:s + FEATURE_BLOCK].T).toarray().T > 0  # [block, rows]
            for local, out in ((self.pos_local, hits_pos), (self.neg_local, hits_neg)):
                idx = local[s:s + FEATURE_BLOCK]
                got = np.take_along_axis(H, np.maximum(idx, 0), axis=1) & (idx >= 0)
                out[s:s + FEATURE_BLOCK] = got.sum(1)
        result = smoothed_lift(hits_pos, (self.pos_local >= 0).sum(1), hits_neg, (self.neg_local >= 0).sum(1))
        result[[not kws for kws in keywords]] = np.nan
        return result


def seeded_derangement(n: int, seed: int) -> np.ndarray | None:
    """A permutation with no fixed point (who gets whose label in the random baseline); None for n < 2."""
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    while True:  # about e tries on average
        perm = rng.permutation(n)
        if not (perm == np.arange(n)).any():
            return perm


def score_with_baselines(scorer: LabelScorer, keywords: list[list[str]], label_emb: np.ndarray,
                         tfidf: list[list[str]], tfidf_emb: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """The features table's six score columns: the labels, a random other labelled feature's label
    (a seeded derangement over the labelled features, scored on this feature's texts) and the
    TF-IDF top terms, all measured the same way."""
    has_label = np.array([bool(k) for k in keywords])
    labelled = np.flatnonzero(has_label)
    perm = seeded_derangement(len(labelled), seed)
    rand_kws: list[list[str]] = [[] for _ in keywords]
    rand_emb = np.zeros_like(label_emb)
    if perm is not None:
        donor = labelled[perm]
        rand_emb[labelled] = label_emb[donor]
        for f, g in zip(labelled, donor):
            rand_kws[f] = keywords[g]
    return {
        "label_auroc": scorer.auroc(label_emb, has_label),
        "keyword_hit_lift": scorer.lift(keywords),
        "random_label_auroc": scorer.auroc(rand_emb, np.array([bool(k) for k in rand_kws])),
        "random_keyword_hit_lift": scorer.lift(rand_kws),
        "tfidf_auroc": scorer.auroc(tfidf_emb, np.array([bool(k) for k in tfidf])),
        "tfidf_keyword_hit_lift": scorer.lift(tfidf),
    }
