"""The store's nearest texts to a query, answered from unit rows kept in RAM: one matrix-vector
product and a partial sort per query (a few ms at 32k texts), where search.nearest_texts re-reads
the memory map and re-normalises every row on each call. A store too large for `max_mib` is
searched with search.nearest_texts itself (streaming, slower, same answer)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.store import EmbeddingStore
from ..search import nearest_texts


class TextIndex:
    def __init__(self, store: EmbeddingStore, max_mib: int, batch: int = 8192) -> None:
        self.store = store
        self.unit: np.ndarray | None = None
        if len(store) * store.dim * 4 <= max_mib * 2**20:
            self.unit = np.empty((len(store), store.dim), np.float32)
            for start in range(0, len(store), batch):
                X = np.asarray(store.embeddings[start : start + batch], dtype=np.float32)
                self.unit[start : start + len(X)] = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)

    def nearest(self, emb: np.ndarray, k: int) -> pd.DataFrame:
        """The k store texts most cosine-similar to `emb` [d]: row, cos, id, domain, text (best first),
        ties to the lower row, as search.nearest_texts orders them."""
        if self.unit is None:
            return nearest_texts(self.store, emb, k)
        q = np.asarray(emb, dtype=np.float32).reshape(-1)
        cos = self.unit @ (q / max(float(np.linalg.norm(q)), 1e-12))
        k = min(k, len(cos))
        top = np.argpartition(-cos, k - 1)[:k] if k < len(cos) else np.arange(len(cos))
        rows = top[np.lexsort((top, -cos[top]))]
        meta = self.store.metadata().iloc[rows]
        return pd.DataFrame(
            {
                "row": rows.astype(np.int64),
                "cos": cos[rows].astype(np.float64),
                "id": meta["id"].to_numpy(),
                "domain": meta["domain"].to_numpy(),
                "text": meta["text"].to_numpy(),
            }
        )
