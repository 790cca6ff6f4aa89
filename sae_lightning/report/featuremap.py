"""2-D map of decoder directions that keeps clusters: a spectral embedding of the kNN graph.

PCA of W_dec rows explains ~1 % of the variance on its first axis, so a PCA map is one blob.
Measured on the default run (3,072 live decoder rows × 384, on 2 busy shared cores), as time and
the share of each feature's 10 nearest map neighbours that share its main domain (0.34 in the full
384-d space): PCA 0.5 s / 0.21; scikit-learn t-SNE 38 s / 0.25; scikit-learn SpectralEmbedding
19 s / 0.29 (its shift-invert LU dominates); UMAP (umap-learn) 270 s of numba compilation on first
import, then 66 s a fit. This file's spectral embedding: 0.8 s / 0.30, offline, numpy + scipy only.

The graph: each live row linked to its NEIGHBOURS most cosine-similar rows, symmetrised. A small
uniform link of weight TELEPORT between all pairs (applied implicitly, never as a dense matrix)
keeps the graph connected, so isolated groups do not take up eigenvectors of their own. The map is
the 2nd and 3rd eigenvectors of the normalised adjacency (the 1st is constant). Dead features keep
their random initial directions: they are left out and placed in the lower-left corner.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, eigsh

NEIGHBOURS = 15
TELEPORT = 1e-3


def knn_graph(W: np.ndarray, k: int) -> sp.csr_matrix:
    """Symmetric 0/1 adjacency: i ~ j when j is among the k rows most cosine-similar to i or back.

    float32 matmul and torch.topk: at d_sae 16384 numpy's float64 matmul and argpartition took
    10 s of which argpartition was 8; this takes 2 s (the n^2 similarities stay the cost)."""
    import torch

    X = torch.nn.functional.normalize(torch.as_tensor(np.asarray(W, dtype=np.float32)), dim=1, eps=1e-12)
    n = X.shape[0]
    nb = np.empty((n, k), dtype=np.int64)
    for s in range(0, n, 2048):  # blocks keep the similarity matrix at 2048 x n
        S = X[s : s + 2048] @ X.T
        S[torch.arange(S.shape[0]), torch.arange(s, s + S.shape[0])] = -torch.inf  # not one's own neighbour
        nb[s : s + 2048] = torch.topk(S, k, dim=1, sorted=False).indices.numpy()
    A = sp.csr_matrix((np.ones(n * k), (np.repeat(np.arange(n), k), nb.ravel())), shape=(n, n))
    return ((A + A.T) > 0).astype(np.float64)


def spectral_2d(W: np.ndarray) -> np.ndarray:
    """[n, 2] coordinates of the rows of W, each axis scaled to [0, 1]."""
    n = W.shape[0]
    if n < 5:
        return np.column_stack([np.linspace(0, 1, n), np.full(n, 0.5)])
    A = knn_graph(W, min(NEIGHBOURS, n - 2))
    deg = np.asarray(A.sum(axis=1)).ravel() + TELEPORT * n
    dm = 1.0 / np.sqrt(deg)

    def matvec(v):
        v = np.ravel(v)
        return dm * (A @ (dm * v)) + TELEPORT * dm * (dm @ v)

    op = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    rng = np.random.default_rng(0)  # a fixed start vector: the same map on every run
    vals, vecs = eigsh(op, k=3, which="LA", v0=rng.uniform(0.5, 1.0, n), tol=1e-4)
    xy = vecs[:, np.argsort(vals)[::-1][1:3]] * dm[:, None]
    xy *= np.where(np.abs(xy.max(axis=0)) >= np.abs(xy.min(axis=0)), 1.0, -1.0)  # eigsh's sign is arbitrary
    # Spectral maps have a few far outliers; scaling by the 1st-99th percentile keeps the bulk readable.
    lo, hi = np.percentile(xy, 1, axis=0), np.percentile(xy, 99, axis=0)
    return np.clip((xy - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0, 1.0)


def map_coordinates(W: np.ndarray, live: np.ndarray) -> np.ndarray:
    """[n, 2] in [0, 1]: live rows by spectral_2d, dead rows scattered in a small corner patch."""
    xy = np.zeros((W.shape[0], 2))
    if live.any():
        xy[live] = spectral_2d(W[live])
    dead = np.flatnonzero(~live)
    if dead.size:
        xy[dead] = np.random.default_rng(0).uniform(0.0, 0.04, size=(dead.size, 2))
    return xy
