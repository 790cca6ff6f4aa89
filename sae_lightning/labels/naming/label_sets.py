"""The label sets made beside the KeyBERT keywords, all from the same candidates and train rows:
each feature's concept (concept.py) and the two method baselines (seed_baseline.py,
bertopic_baseline.py). The TF-IDF and random baselines are made in feature_table.py."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...schemas.labeling import LabelingConfig
from .bertopic_baseline import bertopic_labels
from .candidates import DocTerms, TrainCounts
from .concept import choose_concepts, concept_fit, top_direction, train_hard_negatives
from .phrase_cache import PhraseEmbeddingCache
from .seed_baseline import seed_labels
from .source_documents import first_per_document


@dataclass
class Candidates:
    """The candidate phrases some live feature holds, with their embeddings and count columns."""

    words: np.ndarray  # [V]
    emb: np.ndarray  # [V, d] from the phrase cache
    cols: np.ndarray  # [V] columns in TrainCounts.counts
    used: np.ndarray  # [V] columns in DocTerms.matrix


def used_candidates(terms: DocTerms, cache: PhraseEmbeddingCache) -> Candidates:
    used = np.flatnonzero(np.diff(terms.matrix.tocsc().indptr) > 0)
    words = terms.words[used]
    return Candidates(words, cache.get([str(w) for w in words]), terms.cols[used], used)


def baseline_labels(
    top_rows: np.ndarray, terms: DocTerms, counts: TrainCounts, cands: Candidates, store, top_n: int
) -> dict[str, list[list[str]]]:
    """{"seed": ..., "bertopic": ...} keyword lists for the features of top_rows [F, m] (terms' rows)."""
    text_counts = counts.counts[:, cands.cols].tocsr()
    present = text_counts.copy()
    present.data[:] = 1
    return {
        "seed": seed_labels(top_rows, present, counts.rows, store.embeddings, cands.words, cands.emb, top_n),
        "bertopic": bertopic_labels(
            top_rows,
            terms.matrix[:, cands.used],
            text_counts,
            counts.rows,
            store.embeddings,
            cands.words,
            cands.emb,
            top_n,
        ),
    }


def concept_labels(
    sae,
    store,
    train_rows: np.ndarray,
    feature_ids: np.ndarray,
    top_rows: np.ndarray,
    doc_codes: np.ndarray,
    cands: Candidates,
    cfg: LabelingConfig,
) -> tuple[list[str], np.ndarray]:
    """The concept of each feature of feature_ids (top_rows [F, m] its top train rows) and how well
    it fits each of the feature's top texts, one per document ([F, k], concept.concept_fit)."""
    top = top_direction(top_rows, doc_codes, store.embeddings)
    hard = train_hard_negatives(
        sae, store, train_rows, feature_ids, top, cfg.n_hard, cfg.seed, cfg.batch_size, cfg.device
    )
    words = [str(w) for w in cands.words]
    concepts = choose_concepts(top, hard, words, cands.emb, cfg.concept_contrast)[0]
    index = {w: i for i, w in enumerate(words)}
    emb = cands.emb[[index[c] for c in concepts]]
    return concepts, concept_fit(emb, first_per_document(top_rows, doc_codes), store.embeddings, train_rows, cfg.seed)
