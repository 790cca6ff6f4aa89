"""Name feature families with the labelling machinery of the features themselves: a family's
document is the union of its members' top texts, and it goes through the same candidate counting,
phrase-embedding cache and batched KeyBERT call as a feature (labels/naming/keybert.py), so a family
name is found among the same candidates, by the same rules, as its members' labels."""

from __future__ import annotations

import numpy as np

from ..data.store import EmbeddingStore
from ..labels.naming.candidates import TrainCounts, count_train_texts, doc_term_matrix
from ..labels.naming.keybert import keybert_labels
from ..labels.naming.phrase_cache import model_and_cache
from ..labels.naming.tfidf_baseline import tfidf_scores
from ..run_schema import DEAD, INTERPRETABLE, MIXED, TOKEN, verdict_marked
from ..schemas.labeling import LabelingConfig


def family_rows(members: list[list[int]], top_rows: np.ndarray) -> np.ndarray:
    """[n_families, M] store rows: every member's top rows, parent first, each row once, -1 padding."""
    docs = [list(dict.fromkeys(int(r) for f in fam for r in top_rows[f] if r >= 0)) for fam in members]
    out = np.full((len(docs), max((len(d) for d in docs), default=0)), -1, dtype=np.int64)
    for i, d in enumerate(docs):
        out[i, : len(d)] = d
    return out


def name_families(
    members: list[list[int]],
    top_rows: np.ndarray,
    store: EmbeddingStore,
    cfg: LabelingConfig,
    sae,
    counts: TrainCounts | None = None,
) -> list[list[str]]:
    """KeyBERT keywords per family ([] where its texts hold no candidate, e.g. a store of bare
    embeddings). members: feature ids, parent first; top_rows [d_sae, m] from the scan; counts:
    the labelling's counts of the top texts, which hold every family text (None: count them here).
    Either way the family's TF-IDF is over the families' texts only, as it always was."""
    if not members:
        return []
    rows = family_rows(members, top_rows)
    texts = store.metadata()["text"].to_numpy()
    held = np.unique(rows[rows >= 0])  # only the texts the families hold
    if counts is not None and np.isin(held, counts.rows).all():
        counts = counts.subset(held)
    else:
        counts = count_train_texts(texts, held, cfg)
    if counts is None:
        return [[] for _ in members]
    model, cache = model_and_cache(store)
    parents = np.array([fam[0] for fam in members], dtype=np.int64)  # what doc_embedding="decoder" reads
    terms = doc_term_matrix(rows, counts, cfg)
    labels = keybert_labels(parents, rows, texts, terms, tfidf_scores(terms, counts), store, sae, model, cache, cfg)
    return labels.keywords


def family_label(keywords: list[str], member_verdicts: list[str]) -> str:
    """The family's name; when fewer than half of its (non-dead) members are interpretable it is
    prefixed "mixed: " ("token: " when most of them are token features), so a family of
    incoherent features, or of features that share only a word-piece, never reads like a topic."""
    label = ", ".join(keywords)
    known = [v for v in member_verdicts if v and v != DEAD]
    if label and known and sum(v == INTERPRETABLE for v in known) * 2 < len(known):
        return verdict_marked(TOKEN if sum(v == TOKEN for v in known) * 2 > len(known) else MIXED, label)
    return label
