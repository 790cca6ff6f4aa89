"""KeyBERT labels for every live feature in ONE batched `extract_keywords` call.

Feature i's document is its top train texts joined. KeyBERT gets precomputed document embeddings
(`doc_embedding`), one CountVectorizer (already counted, see candidates.py) and the candidate
words' embeddings aligned row for row with that vectorizer's vocabulary, taken from the phrase
cache kept with the store. So KeyBERT itself embeds nothing and tokenises nothing; what is left
to it is the per-document candidate ranking (cosine, MMR). With evidence_power > 0 KeyBERT
returns a shortlist ranked by cosine and evidence_rerank.py picks the label from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse import csr_matrix

from ...runtime import limited_threads
from ...schemas.labeling import LabelingConfig
from ..phase_timer import PhaseTimer
from .candidates import DocTerms, PrecountedVectorizer, analyzer_params
from .evidence_rerank import rerank
from .phrase_cache import PhraseEmbeddingCache


@dataclass
class KeywordLabels:
    keywords: list[list[str]]  # per feature in the order given; [] when not labelled
    scores: list[list[float]]  # cosine(keyword, feature document), KeyBERT's score
    reasons: list[str]  # "" when labelled, else why not


def feature_docs(texts: np.ndarray, top_rows: np.ndarray) -> list[str]:
    return ["\n".join(str(t) for t in texts[r[r >= 0]]) for r in top_rows]


def doc_embeddings(
    kind: str, top_rows: np.ndarray, feature_ids: np.ndarray, docs: list[str], store, sae, model
) -> np.ndarray:
    """What each feature's "document" is for KeyBERT (LabelingConfig.doc_embedding):
    mean    the mean store embedding of its top texts (no model call; the default),
    concat  the model's embedding of its joined top texts (truncated at the model's max length),
    decoder its decoder direction W_dec[i] + b_dec, a point in the embedding space like a text."""
    if kind == "mean":
        valid = top_rows >= 0
        unique, col = np.unique(top_rows[valid], return_inverse=True)
        owner = np.repeat(np.arange(len(top_rows)), valid.sum(1))
        # (features x texts) averaging matrix @ the texts' store embeddings: one sparse product
        weights = csr_matrix(((1.0 / valid.sum(1))[owner], (owner, col)), shape=(len(top_rows), len(unique)))
        return np.asarray(weights @ np.asarray(store.embeddings[unique], dtype=np.float32), dtype=np.float32)
    if kind == "concat":
        return np.asarray(model.encode(docs, batch_size=32, convert_to_numpy=True, show_progress_bar=False))
    if kind == "decoder":
        with torch.no_grad():
            ids = torch.as_tensor(feature_ids, device=sae.W_dec.device)
            return (sae.W_dec[ids].float() + sae.b_dec.float()).cpu().numpy()
    raise ValueError(f"unknown doc_embedding {kind!r}")


def no_candidate_reason(cfg: LabelingConfig, whole_split: bool) -> str:
    where = "the train split" if whole_split else "its top texts"
    return (
        f"no candidate words: {where} hold(s) only stop words or one-letter tokens "
        f"(stop_words={cfg.stop_words}, ngram_range={list(cfg.ngram_range)})"
    )


def keybert_labels(
    feature_ids: np.ndarray,
    top_rows: np.ndarray,
    texts: np.ndarray,
    terms: DocTerms | None,
    evidence: csr_matrix | None,
    store,
    sae,
    model,
    cache: PhraseEmbeddingCache,
    cfg: LabelingConfig,
    timer: PhaseTimer | None = None,
) -> KeywordLabels:
    """Label the given (live) features: top_rows [F, m] are their top train rows (-1 padding),
    terms their candidates (None: the train split has no candidate at all) and evidence the
    candidates' TF-IDF [F, V] that the rerank weighs (tfidf_baseline.tfidf_scores)."""
    F = len(feature_ids)
    keywords: list[list[str]] = [[] for _ in range(F)]
    scores: list[list[float]] = [[] for _ in range(F)]
    if terms is None:
        return KeywordLabels(keywords, scores, [no_candidate_reason(cfg, True)] * F)
    matrix, words = terms.matrix, terms.words
    n_cands = np.diff(matrix.indptr)
    where = " from distinct documents" if cfg.distinct_documents else ""
    filtered = (
        f"no recurring keyword: none of its words occurs in min_texts={cfg.min_texts} of its top texts"
        f"{where} (and in the top texts of min_df={cfg.min_df} features, within "
        f"max_features={cfg.max_features}); lower labeling.min_texts to label it anyway"
    )
    reasons = [
        "" if n else filtered if had_words else no_candidate_reason(cfg, False)
        for n, had_words in zip(n_cands, terms.n_before > 0)
    ]
    todo = np.flatnonzero(n_cands > 0)
    if not len(todo):
        return KeywordLabels(keywords, scores, reasons)

    timer = timer or PhaseTimer()
    docs = feature_docs(texts, top_rows[todo])
    with timer("doc_embeddings"):
        doc_emb = doc_embeddings(cfg.doc_embedding, top_rows[todo], feature_ids[todo], docs, store, sae, model)
    # Only words some labelled document holds: the vocabulary KeyBERT sees, in its order.
    sub = matrix[todo]
    used = np.flatnonzero(np.diff(sub.tocsc().indptr) > 0)
    sub, words = sub[:, used], words[used]
    reranked = cfg.evidence_power > 0
    with timer("word_embeddings"):
        word_emb = cache.get([str(w) for w in words])

    from keybert import KeyBERT

    vectorizer = PrecountedVectorizer(**analyzer_params(cfg)).set_counts(sub.tocsr(), words)
    with timer("keybert"), limited_threads(cfg.small_op_threads):  # a loop of tiny BLAS calls per document
        found = KeyBERT(model=model).extract_keywords(
            docs,
            vectorizer=vectorizer,
            doc_embeddings=doc_emb,
            word_embeddings=word_emb,
            use_mmr=cfg.use_mmr and not reranked,
            diversity=cfg.diversity,
            top_n=max(cfg.shortlist, cfg.top_n) if reranked else cfg.top_n,
        )
    if len(docs) == 1:  # KeyBERT unwraps the list for a single document
        found = [found]
    if reranked:
        with timer("rerank"):
            found = rerank(
                found,
                evidence[todo][:, used],
                words,
                word_emb,
                cfg.top_n,
                cfg.evidence_power,
                cfg.diversity if cfg.use_mmr else None,
                terms.support[todo][:, used],
                cfg.keyword_min_relevance,
            )
    for i, kws in zip(todo, found):
        keywords[i] = [str(k) for k, _ in kws]
        scores[i] = [float(s) for _, s in kws]
        if not kws:
            reasons[i] = "KeyBERT returned no keyword for this feature's document"
    return KeywordLabels(keywords, scores, reasons)
