"""Co-firing counts of feature pairs, accumulated batch by batch in memory that does not grow with
the number of rows (the scan's part for families.py).

A row on which n features fire adds its n(n-1)/2 pairs; a TopK SAE fires k of d_sae, so a batch
adds at most B·k(k-1)/2, but a dense SAE (ReLU or JumpReLU at L0 ~300) adds B·L0²/2: 150M pairs in
a batch of 4096 rows, 6.5 GB of index arrays at once. So a batch's pairs are expanded a run of
whole rows at a time, at most `PAIR_CHUNK` pairs (or one row's) per run. Two accumulators, both
exact until their bound:

- dense: one int32 counter per unordered pair, d_sae(d_sae-1)/2 of them (512 MiB at d_sae 16384),
  used while that fits `dense_bytes`; O(1) per pair, no sorting;
- sparse: sorted unique pair keys with counts, merged every `flush` pair occurrences. Past
  `max_pairs` distinct pairs the rarest are dropped (a pair dropped and seen again restarts from
  0, so it can only be undercounted, by at most the count it was dropped at). `dropped_at`
  says the largest count ever dropped: 0 means every count is exact.

`result(min_count)` gives the symmetric csr of the pairs seen at least `min_count` times (families
need 2: a single joint firing is no edge), with each feature's firing count on the diagonal.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse import coo_matrix, csr_matrix

DENSE_BYTES = 1 << 30  # the dense counter up to d_sae ~ 23k
MAX_PAIRS = 100_000_000  # sparse mode: distinct pairs kept (about 1.2 GiB of keys and counts)
FLUSH = 16_000_000  # sparse mode: pair occurrences buffered between merges
PAIR_CHUNK = 4_000_000  # pairs expanded at once (~150 MB of index arrays); TopK at k 32 adds 2M a batch


def row_runs(rows: np.ndarray, chunk: int) -> list[tuple[int, int]]:
    """[lo, hi) spans of the entries (rows sorted), each of whole rows and holding at most `chunk`
    pairs, or one row's pairs where that row alone holds more."""
    if not len(rows):
        return []
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    n = np.diff(np.r_[starts, len(rows)])
    pairs = n * (n - 1) // 2
    if pairs.sum() <= chunk:
        return [(0, len(rows))]
    spans, lo, held = [], 0, 0
    for start, p in zip(starts.tolist(), pairs.tolist()):  # a few thousand rows a batch
        if held and held + p > chunk:
            spans.append((lo, start))
            lo, held = start, 0
        held += p
    spans.append((lo, len(rows)))
    return spans


def row_pairs(rows: np.ndarray, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(i, j), i < j, for every two entries of the same row. rows sorted, feats increasing within a
    row (what `nonzero` of a dense [B, d_sae] batch gives)."""
    if not len(rows):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    width = int(np.bincount(rows).max())
    i_parts, j_parts = [], []
    for d in range(1, width):  # entry e and entry e + d share a row: one pair
        same = rows[d:] == rows[:-d]
        i_parts.append(feats[:-d][same])
        j_parts.append(feats[d:][same])
    if not i_parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(i_parts).astype(np.int64), np.concatenate(j_parts).astype(np.int64)


class PairCounts:
    def __init__(
        self,
        d_sae: int,
        dense_bytes: int = DENSE_BYTES,
        max_pairs: int = MAX_PAIRS,
        flush: int = FLUSH,
        chunk: int = PAIR_CHUNK,
    ) -> None:
        self.d, self.chunk = int(d_sae), int(chunk)
        self.fires = np.zeros(self.d, np.int64)
        n_pairs = self.d * (self.d - 1) // 2
        # int32 (a pair fires together at most once per row: 2^31 rows), a torch tensor for its
        # scatter_add_, which was ~2x faster than np.add.at on the same random indices
        self.dense = torch.zeros(n_pairs, dtype=torch.int32) if n_pairs * 4 <= dense_bytes else None
        self.max_pairs, self.flush = int(max_pairs), int(flush)
        self.keys, self.counts = np.zeros(0, np.int64), np.zeros(0, np.int64)
        self.buffer: list[np.ndarray] = []
        self.buffered = 0
        self.dropped_at = 0

    def _tri(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Position of pair (i, j), i < j, in the row-major upper triangle."""
        return i * (2 * self.d - i - 1) // 2 + (j - i - 1)

    def add(self, rows: np.ndarray, feats: np.ndarray) -> None:
        """The firing (row, feature) entries of one batch, rows sorted, features increasing per row."""
        self.fires += np.bincount(feats, minlength=self.d)
        for lo, hi in row_runs(rows, self.chunk):
            self._add_pairs(*row_pairs(rows[lo:hi], feats[lo:hi]))

    def _add_pairs(self, i: np.ndarray, j: np.ndarray) -> None:
        if self.dense is not None:
            idx = torch.from_numpy(self._tri(i, j))
            self.dense.scatter_add_(0, idx, torch.ones(len(idx), dtype=torch.int32))
            return
        self.buffer.append(i * self.d + j)
        self.buffered += len(i)
        if self.buffered >= self.flush:
            self._merge()

    def _merge(self) -> None:
        if not self.buffer:
            return
        keys, counts = np.unique(np.concatenate(self.buffer), return_counts=True)
        self.buffer, self.buffered = [], 0
        both = np.concatenate([self.keys, keys])
        merged, inverse = np.unique(both, return_inverse=True)
        total = np.bincount(inverse, weights=np.concatenate([self.counts, counts]), minlength=len(merged))
        self.keys, self.counts = merged, total.astype(np.int64)
        if len(self.keys) > self.max_pairs:  # keep the most frequent; ties broken towards low keys
            keep = np.sort(np.argsort(-self.counts, kind="stable")[: self.max_pairs])
            lost = np.ones(len(self.keys), bool)
            lost[keep] = False
            self.dropped_at = max(self.dropped_at, int(self.counts[lost].max()))
            self.keys, self.counts = self.keys[keep], self.counts[keep]

    def pairs(self, min_count: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(i, j, count), i < j, of the pairs seen at least min_count times."""
        if self.dense is not None:
            dense = self.dense.numpy()
            at = np.flatnonzero(dense >= max(min_count, 1))
            starts = np.arange(self.d, dtype=np.int64) * (2 * self.d - np.arange(self.d) - 1) // 2
            i = np.searchsorted(starts, at, side="right") - 1
            j = at - starts[i] + i + 1
            return i, j, dense[at].astype(np.int64)
        self._merge()
        keep = self.counts >= max(min_count, 1)
        keys = self.keys[keep]
        return keys // self.d, keys % self.d, self.counts[keep]

    def result(self, min_count: int = 1) -> csr_matrix:
        """Symmetric [d_sae, d_sae] counts of the pairs seen >= min_count times, firings on the diagonal."""
        i, j, c = self.pairs(min_count)
        diag = np.arange(self.d)
        return coo_matrix(
            (np.r_[c, c, self.fires], (np.r_[i, j, diag], np.r_[j, i, diag])), shape=(self.d, self.d)
        ).tocsr()
