"""Data with a known dictionary, to check that an SAE finds the directions it was built from."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def sparse_dictionary_data(n: int, d_in: int, n_dirs: int, active: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """x [n, d_in]: each row a sum of exactly `active` of `n_dirs` random unit directions, with
    coefficients uniform in [0.5, 1.5). Returns (x, true_dirs [n_dirs, d_in]), float32 on CPU."""
    if not 0 < active <= n_dirs:
        raise ValueError(f"active={active} must be in [1, n_dirs={n_dirs}]")
    gen = torch.Generator().manual_seed(seed)
    true_dirs = F.normalize(torch.randn(n_dirs, d_in, generator=gen), dim=1)
    support = torch.rand(n, n_dirs, generator=gen).topk(active, dim=1).indices  # uniform subsets
    coefficients = 0.5 + torch.rand(n, active, generator=gen)
    x = torch.einsum("na,nad->nd", coefficients, true_dirs[support])
    return x, true_dirs
