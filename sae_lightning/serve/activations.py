"""Every store text's feature activations, kept in memory as one sparse matrix: what lets the
Feature page show texts across a feature's whole activation range and its histogram, and the
Domains page count firings per group without another pass of the SAE.

One streamed pass at start-up (the same iter_activations the labelling scans with); memory is
O(texts x active features per text): ~26 MB for 100k texts at k=32, never O(texts x d_sae).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse import csc_matrix, csr_matrix, vstack

from ..data.store import EmbeddingStore
from ..scan.top_examples import inference_sae, iter_activations


@dataclass
class StoreActivations:
    matrix: csc_matrix  # [texts, d_sae] float32, a column per feature
    feature_of: np.ndarray  # [nnz] int32: the feature (column) of each stored activation

    @property
    def n_texts(self) -> int:
        return self.matrix.shape[0]

    def column(self, feature: int) -> tuple[np.ndarray, np.ndarray]:
        """(store rows, activations) where the feature fires, strongest first."""
        lo, hi = self.matrix.indptr[feature], self.matrix.indptr[feature + 1]
        rows, acts = self.matrix.indices[lo:hi], self.matrix.data[lo:hi]
        order = np.argsort(-acts, kind="stable")
        return rows[order].astype(np.int64), acts[order]

    def fire_counts(self, rows: np.ndarray) -> np.ndarray:
        """[d_sae] int64: of the given store rows (a boolean mask over texts), how many each feature fires on."""
        hit = rows[self.matrix.indices]
        return np.bincount(self.feature_of[hit], minlength=self.matrix.shape[1]).astype(np.int64)

    def top_rows(self, feature: int, rows: np.ndarray, m: int) -> np.ndarray:
        """The feature's m strongest store rows among the given ones (a boolean mask over texts)."""
        r, _ = self.column(feature)
        return r[rows[r]][:m]


def range_sample(acts: np.ndarray, n: int) -> np.ndarray:
    """n positions into activations sorted strongest first, evenly spread over their ranks: the
    texts a feature fires on from its top to its weakest, not only the top."""
    if len(acts) <= n:
        return np.arange(len(acts))
    return np.unique(np.linspace(0, len(acts) - 1, n).round().astype(np.int64))


def store_activations(sae, store: EmbeddingStore, batch_size: int = 4096) -> StoreActivations:
    d_sae, parts = int(sae.cfg.d_sae), []
    with inference_sae(sae, None) as model, torch.no_grad():
        for _, z in iter_activations(model, store, np.arange(len(store)), batch_size):
            parts.append(csr_matrix(z.cpu().numpy().astype(np.float32)))
    full = vstack(parts, format="csc") if parts else csc_matrix((0, d_sae), dtype=np.float32)
    full.sort_indices()
    feature_of = np.repeat(np.arange(d_sae, dtype=np.int32), np.diff(full.indptr))
    return StoreActivations(full, feature_of)
