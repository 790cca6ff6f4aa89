"""A batch's active entries in latent order, by one counting pass (numba): the layout of the sparse
Sᵀ @ dense products in TopK's backward pass (`ActivePattern.t_matmul`). At batch 4096, k 32 it takes
0.5 ms where torch's stable argsort of the 131,072 latent indices and the gathers after it took ~4."""

from __future__ import annotations

import numpy as np
import torch
from numba import njit
from torch import Tensor


@njit(cache=True)
def _counting_sort(idx, offsets, d_sae):  # noqa: ANN001, ANN202
    n, n_rows = len(idx), len(offsets)
    starts = np.zeros(d_sae + 1, np.int32)
    for e in range(n):
        starts[idx[e] + 1] += 1
    for j in range(d_sae):
        starts[j + 1] += starts[j]
    fill = starts[:-1].copy()
    entry = np.empty(n, np.int64)
    row = np.empty(n, np.int32)
    for r in range(n_rows):
        for e in range(offsets[r], offsets[r + 1] if r + 1 < n_rows else n):
            j = idx[e]
            entry[fill[j]], row[fill[j]] = e, r
            fill[j] += 1
    return starts, entry, row


def latent_order(idx: Tensor, offsets: Tensor, d_sae: int) -> tuple[Tensor, Tensor, Tensor]:
    """(starts, entry, row) for entries given in the `F.embedding_bag` layout (idx [n], offsets [B]):
    latent j's entries are entry[starts[j]:starts[j + 1]], in their original order (stable), and
    row[p] is the sample of entry[p]. starts and row are int32, the index type of torch's CSR."""
    if idx.numel() >= 2**31:
        raise ValueError(f"{idx.numel()} active entries overflow int32 CSR indices; use a smaller batch")
    starts, entry, row = _counting_sort(idx.cpu().numpy(), offsets.cpu().numpy(), d_sae)
    return torch.from_numpy(starts), torch.from_numpy(entry), torch.from_numpy(row)
