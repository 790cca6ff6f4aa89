"""2-D map of decoder directions: PCA of W_dec rows with numpy.

PCA, not UMAP: it is exact, deterministic and takes well under a second for 6144 x 384, where
UMAP would dominate the report's run time. The axes are fitted on live features only, because
dead features keep their random initial directions, which would only add isotropic noise;
dead features are still projected (and drawn grey) so one can see where they sit.
"""
from __future__ import annotations

from contextlib import nullcontext

import numpy as np


def _one_thread():
    """Run LAPACK single-threaded: for a d_in x d_in eigh, threaded OpenBLAS spends far more
    time synchronising than computing (measured: 1-5 s with 2 busy threads vs 0.02 s with one).
    threadpoolctl comes with scikit-learn; without it we just run as configured."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return nullcontext()
    return threadpool_limits(limits=1)


def pca_2d(W: np.ndarray, fit_mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Project rows of W onto their top-2 principal axes.

    Returns (xy [n, 2], explained variance ratio [2]). Uses the d x d covariance (d = d_in is
    small) rather than an SVD of the n x d matrix: one BLAS matmul plus a tiny eigh.
    """
    W = np.asarray(W, dtype=np.float64)
    fit = W[fit_mask] if fit_mask is not None and fit_mask.sum() >= 3 else W
    mean = fit.mean(axis=0)
    X = fit - mean
    cov = X.T @ X / max(len(X) - 1, 1)
    with _one_thread():
        evals, evecs = np.linalg.eigh(cov)  # ascending
    order = np.argsort(evals)[::-1][:2]
    axes = evecs[:, order]
    # Fix the sign so reruns give the same picture (eigh's sign is arbitrary).
    axes *= np.where(axes[np.abs(axes).argmax(axis=0), range(axes.shape[1])] < 0, -1.0, 1.0)
    total = float(evals.clip(min=0).sum()) or 1.0
    ratio = evals[order].clip(min=0) / total
    xy = (W - mean) @ axes
    if xy.shape[1] < 2:  # d_in == 1: pad so callers always get two columns
        xy = np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
        ratio = np.pad(ratio, (0, 2 - ratio.shape[0]))
    return xy, ratio


def choose_points(n: int, live: np.ndarray, cap: int, seed: int = 0) -> np.ndarray:
    """Row indices to draw when an SAE has more than `cap` features: all live features first
    (sampled without replacement if even they exceed the cap), dead ones only if room is left."""
    if n <= cap:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    live_idx, dead_idx = np.flatnonzero(live), np.flatnonzero(~live)
    if live_idx.size >= cap:
        return np.sort(rng.choice(live_idx, size=cap, replace=False))
    extra = rng.choice(dead_idx, size=cap - live_idx.size, replace=False)
    return np.sort(np.concatenate([live_idx, extra]))
