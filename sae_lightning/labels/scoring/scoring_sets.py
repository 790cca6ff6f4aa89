"""The validation texts a label is scored on, per feature (never the train texts that made it).

The scan (scan/stream.py) keeps every firing (row, feature, act) triple of the validation rows; a sparse
SAE fires k of d_sae latents per row, so this is O(rows x k). From it:

- positives: up to m_pos firing rows stratified over the feature's activation range (evenly
  spaced ranks of its firing rows sorted by activation: the strongest, the weakest and the
  quantiles between), so a label must hold for the feature's typical firing, not only its peak;
- random negatives: a seeded uniform sample of rows where the feature is exactly 0;
- hard negatives: the rows where it is exactly 0 whose embedding is nearest to the positives'
  mean direction, i.e. texts on the same subject that the feature does not fire on; a label that
  names the subject but not what the feature picks out of it scores 0.5 against them;
- firing: the sparse [F, n_val] activations, for keyword precision and recall over the whole split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse import csr_matrix

from ...data.store import EmbeddingStore
from ...scan.stream import scan_store

FEATURE_BLOCK = 512  # features per [block, n_val] similarity matrix of the hard-negative search ...
BLOCK_ENTRIES = 1 << 24  # ... and at most this many entries (64 MiB of float32), whatever n_val is
UNIT_BLOCK = 65536  # rows normalised at a time


@dataclass
class ScoringSets:
    """Store rows per feature; -1 pads a short list."""

    val_rows: np.ndarray  # [n_val] sorted store rows of the validation split
    firing: csr_matrix  # [F, n_val] activation where > 0 (columns index val_rows)
    pos_rows: np.ndarray  # [F, m_pos]
    neg_rows: np.ndarray  # [F, n_negatives]
    hard_rows: np.ndarray  # [F, n_hard]


def stratified_positives(firing: csr_matrix, m_pos: int) -> np.ndarray:
    """[F, m_pos] column indices: evenly spaced ranks of each feature's firing columns by activation."""
    out = np.full((firing.shape[0], m_pos), -1, dtype=np.int64)
    for f in range(firing.shape[0]):
        lo, hi = firing.indptr[f], firing.indptr[f + 1]
        if hi == lo:
            continue
        order = firing.indices[lo:hi][np.argsort(-firing.data[lo:hi], kind="stable")]
        picks = order if len(order) <= m_pos else order[np.round(np.linspace(0, len(order) - 1, m_pos)).astype(int)]
        out[f, : len(picks)] = picks
    return out


def random_negatives(firing: csr_matrix, n_negatives: int, seed: int) -> np.ndarray:
    """[F, n] column indices: per feature the first n non-firing columns of one seeded permutation."""
    n_val = firing.shape[1]
    perm = np.random.default_rng(seed).permutation(n_val)
    out = np.full((firing.shape[0], min(n_negatives, n_val)), -1, dtype=np.int64)
    for f in range(firing.shape[0]):
        fired = firing.indices[firing.indptr[f] : firing.indptr[f + 1]]
        head = perm[: n_negatives + len(fired)]
        picks = head[~np.isin(head, fired)][: out.shape[1]]
        out[f, : len(picks)] = picks
    return out


def hard_negatives(firing: csr_matrix, pos_cols: np.ndarray, unit_val: np.ndarray, n_hard: int) -> np.ndarray:
    """[F, n_hard] column indices: the non-firing columns nearest (cosine) to the mean unit
    embedding of the feature's positives, nearest first; features without positives get none."""
    F, n_val = firing.shape
    n_hard = min(n_hard, n_val)
    out = np.full((F, n_hard), -1, dtype=np.int64)
    if n_hard == 0:
        return out
    has_pos = pos_cols >= 0
    cnt = has_pos.sum(1, keepdims=True)
    centroid = np.zeros((F, unit_val.shape[1]), dtype=np.float32)
    for s in range(0, F, FEATURE_BLOCK):  # [block, m_pos, d] at a time
        b = slice(s, s + FEATURE_BLOCK)
        centroid[b] = (unit_val[np.maximum(pos_cols[b], 0)] * has_pos[b][..., None]).sum(1) / np.maximum(cnt[b], 1)
    return nearest_non_firing(firing, centroid, unit_val, n_hard, cnt[:, 0] > 0)


def nearest_non_firing(
    firing: csr_matrix, centroid: np.ndarray, unit: np.ndarray, n: int, ok_rows: np.ndarray | None = None
) -> np.ndarray:
    """[F, n] columns of `unit` [n_cols, d] nearest (cosine) each centroid [F, d] among the columns
    where firing [F, n_cols] is 0, nearest first (-1: none, or a feature not in ok_rows)."""
    F, n_cols = firing.shape
    n = min(n, n_cols)
    out = np.full((F, n), -1, dtype=np.int64)
    if n == 0:
        return out
    unit_t = torch.from_numpy(np.ascontiguousarray(unit, dtype=np.float32))
    step = max(1, min(FEATURE_BLOCK, BLOCK_ENTRIES // max(n_cols, 1)))
    for s in range(0, F, step):
        block = slice(s, min(s + step, F))
        # torch's topk: numpy's argpartition over [block, n_val] was most of this function's time
        # (16x for 10x the texts at d_sae 16384), as in the feature map's kNN graph
        sim = torch.from_numpy(np.ascontiguousarray(centroid[block], dtype=np.float32)) @ unit_t.T  # [block, n_cols]
        sub = firing[block].tocoo()
        sim[torch.from_numpy(sub.row.astype(np.int64)), torch.from_numpy(sub.col.astype(np.int64))] = -torch.inf
        vals, top = torch.topk(sim, n, dim=1, sorted=True)  # nearest first; firing columns are -inf
        ok = torch.isfinite(vals).numpy()
        if ok_rows is not None:
            ok &= ok_rows[block, None]
        out[block] = np.where(ok, top.numpy(), -1)
    return out


def unit_vectors(x: np.ndarray) -> np.ndarray:
    """x as float32 with each vector (last axis) scaled to unit length (zero vectors stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def unit_rows(embeddings, rows: np.ndarray) -> np.ndarray:
    """[len(rows), d] float32 unit embeddings, read and normalised in blocks (no float64 copy)."""
    out = np.empty((len(rows), embeddings.shape[1]), dtype=np.float32)
    for s in range(0, len(rows), UNIT_BLOCK):
        out[s : s + UNIT_BLOCK] = unit_vectors(embeddings[rows[s : s + UNIT_BLOCK]])
    return out


def sets_from_firing(
    firing: csr_matrix,
    val_rows: np.ndarray,
    store: EmbeddingStore,
    m_pos: int = 20,
    n_negatives: int = 200,
    n_hard: int = 50,
    seed: int = 0,
) -> ScoringSets:
    """The scoring sets from the validation firings the scan kept (ScanResult.val_firing, val_rows)."""
    unit_val = unit_rows(store.embeddings, val_rows)
    pos = stratified_positives(firing, m_pos)
    neg = random_negatives(firing, n_negatives, seed)
    hard = hard_negatives(firing, pos, unit_val, n_hard)

    def to_rows(cols):
        return np.where(cols >= 0, val_rows[np.maximum(cols, 0)], -1) if len(val_rows) else cols

    return ScoringSets(
        val_rows=val_rows, firing=firing, pos_rows=to_rows(pos), neg_rows=to_rows(neg), hard_rows=to_rows(hard)
    )


def scoring_sets(
    sae,
    store: EmbeddingStore,
    val_idx: np.ndarray,
    m_pos: int = 20,
    n_negatives: int = 200,
    n_hard: int = 50,
    seed: int = 0,
    batch_size: int = 4096,
    device: str | None = None,
) -> ScoringSets:
    """The same, scanning the validation rows first (labelling reads the scan it already has)."""
    scan = scan_store(sae, store, np.zeros(0, np.int64), val_idx, 1, batch_size, device, min_cooccur=None)
    return sets_from_firing(scan.val_firing, scan.val_rows, store, m_pos, n_negatives, n_hard, seed)
