"""Helpers of SAE training that no single variant owns: coefficient warm-up and the robust centre
that initialises b_dec."""

from __future__ import annotations

import torch
from torch import Tensor


def warmed_up(coefficient: float, step: int, warmup_steps: int) -> float:
    """Linear warm-up from 0, so that early steps learn to reconstruct before they sparsify."""
    if warmup_steps <= 0:
        return coefficient
    return coefficient * min(1.0, step / warmup_steps)


@torch.no_grad()
def geometric_median(points: Tensor, max_iter: int = 100, tol: float = 1e-6) -> Tensor:
    """Weiszfeld's algorithm: a mean re-weighted by 1/distance until it stops moving. Unlike the
    mean, a few far-off points cannot drag it away."""
    points = points.float()
    median = points.mean(0)
    for _ in range(max_iter):
        weights = 1 / torch.linalg.vector_norm(points - median, dim=1).clamp_min(1e-8)
        new = weights @ points / weights.sum()
        shift = torch.linalg.vector_norm(new - median)
        median = new
        if shift <= tol * torch.linalg.vector_norm(median).clamp_min(1.0):
            break
    return median
