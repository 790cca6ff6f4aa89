"""A small store with planted texts added: what the token and whole-word tests label."""

from __future__ import annotations

import numpy as np

from sae_lightning.labels.naming.phrase_cache import model_and_cache
from sae_lightning.labels.naming.source_documents import document_codes


def with_planted(store, planted: list[str]):
    """(model, phrase cache, texts, embeddings, document codes, n) of the store's texts followed by
    `planted`, each planted text its own document and embedded by the store's model; n: the
    store's own count (planted text i is row n + i)."""
    model, cache = model_and_cache(store)
    meta = store.metadata()
    n = len(meta)
    texts = np.r_[meta["text"].to_numpy().astype(object), np.array(planted, dtype=object)]
    X = np.r_[np.asarray(store.embeddings, np.float32), cache.get(planted)]
    codes = document_codes(np.r_[meta["id"].to_numpy().astype(str), [f"planted{i}#0" for i in range(len(planted))]])
    return model, cache, texts, X, codes, n
