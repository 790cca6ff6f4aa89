"""Exact per-row top-k on CPU by threshold instead of sorting: numba kernels for float32 and bfloat16.

torch.topk on CPU partially sorts (value, index) pairs for every row; at TopK's shapes (k = 32 of
3072) it is the largest single cost of a bfloat16-selected training step. Per row, this kernel:

1. splits the row into `3k` contiguous segments and takes each segment's maximum (one vectorised
   pass, the only one over the whole row);
2. finds t, the k-th largest segment maximum. k segments hold a value >= t, so the row's k-th
   largest value is >= t: every top-k entry lies in a segment whose maximum is >= t;
3. collects the entries >= t of those segments (typically about 2k of them);
4. finds their k-th largest value and returns the entries above it, then ties at it in column
   order until there are k.

Steps 2 and 4 bisect over integer keys rather than compare floats: a float's bits read as a signed
integer keep the floats' order once a negative value's magnitude bits are flipped, so a count of
keys >= a candidate threshold is a branch-free loop that vectorises, and bfloat16 keys are int16.
NaN sorts above +inf (as in torch.topk) when its sign bit is clear, below -inf when it is set.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from numba import njit, prange
from torch import Tensor

_CHUNKS = 64  # row blocks handed to numba's threads: each allocates its scratch once


@njit(inline="always")
def _kth_largest_key(keys, n, k, lo, hi):  # noqa: ANN001, ANN202
    """The largest t in [lo, hi] with at least k of keys[:n] >= t (given that lo qualifies)."""
    while lo < hi:
        mid = (lo + hi + 1) >> 1
        count = 0
        for i in range(n):
            count += keys[i] >= mid
        if count >= k:
            lo = mid
        else:
            hi = mid - 1
    return lo


@njit(inline="always")
def _key(v, shift, mask):  # noqa: ANN001, ANN202
    """v's bits as an integer that orders like the float: a negative value's magnitude bits flipped."""
    return v ^ ((v >> shift) & mask)


def _compile(bits: int):  # noqa: ANN202
    """The kernel for floats of `bits` bits, viewed as signed integers of that width. `_key`'s shift
    and mask are closure constants, so each width compiles to its own narrow-integer code; numba keys
    its on-disk cache on them (plain ints: a closed-over function would miss the cache)."""
    shift, mask = bits - 1, (1 << (bits - 1)) - 1

    @njit(parallel=True, cache=True)
    def topk_rows(rows, k, n_segments, out):  # noqa: ANN001, ANN202
        n_rows, d = rows.shape
        seg = d // n_segments  # a fixed trip count vectorises; the last segment also takes the tail
        tail = n_segments * seg
        lowest, highest = -mask - 1, mask
        per_chunk = (n_rows + _CHUNKS - 1) // _CHUNKS
        for chunk in prange(_CHUNKS):
            seg_max = np.empty(n_segments, rows.dtype)
            cand_key = np.empty(d, rows.dtype)
            cand_col = np.empty(d, np.int32)
            for r in range(chunk * per_chunk, min(n_rows, (chunk + 1) * per_chunk)):
                row = rows[r]
                for s in range(n_segments):
                    m, base = lowest, s * seg
                    for j in range(seg):
                        v = row[base + j]
                        m = max(m, _key(v, shift, mask))
                    seg_max[s] = m
                for j in range(tail, d):
                    v = row[j]
                    seg_max[n_segments - 1] = max(seg_max[n_segments - 1], _key(v, shift, mask))
                t = _kth_largest_key(seg_max, n_segments, k, lowest, highest)
                n = 0
                for s in range(n_segments):
                    if seg_max[s] >= t:
                        base = s * seg
                        for j in range(seg):
                            v = row[base + j]
                            key = _key(v, shift, mask)
                            cand_key[n], cand_col[n] = key, base + j
                            n += key >= t  # written always, kept when >= t: no branch to mispredict
                if seg_max[n_segments - 1] >= t:
                    for j in range(tail, d):
                        v = row[j]
                        key = _key(v, shift, mask)
                        cand_key[n], cand_col[n] = key, j
                        n += key >= t
                kth = _kth_largest_key(cand_key, n, k, t, highest)
                ties = k  # entries above kth all go in; ties at kth fill the rest in column order
                for i in range(n):
                    ties -= cand_key[i] > kth
                m = 0
                for i in range(n):
                    if cand_key[i] > kth or (cand_key[i] == kth and ties > 0):
                        ties -= cand_key[i] == kth
                        out[r, m] = cand_col[i]
                        m += 1

    return topk_rows


_KERNELS = {torch.float32: (torch.int32, _compile(32)), torch.bfloat16: (torch.int16, _compile(16))}


def supports(pre: Tensor, k: int) -> bool:
    """Whether `topk_indices` handles this input (else use torch.topk)."""
    return (
        pre.device.type == "cpu"
        and pre.ndim == 2
        and pre.dtype in _KERNELS
        and 0 < k <= pre.shape[1]
        and pre.shape[0] > 0
    )


def topk_indices(pre: Tensor, k: int) -> Tensor:
    """[B, k] int64 column indices of each row's k largest values, the set torch.topk returns (in
    another order; among tied values the leftmost are taken). See `supports` for the inputs."""
    if not supports(pre, k):
        raise ValueError(
            f"topk_indices takes a non-empty 2-d float32/bfloat16 CPU tensor and 0 < k <= its width, "
            f"got {pre.dtype} {tuple(pre.shape)} on {pre.device} with k={k}; use torch.topk"
        )
    int_dtype, kernel = _KERNELS[pre.dtype]
    out = torch.empty(pre.shape[0], k, dtype=torch.int64)
    # As many threads as torch has (so a caller's limit holds here too), for this call only.
    before = numba.get_num_threads()
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
    try:
        kernel(pre.detach().contiguous().view(int_dtype).numpy(), k, min(pre.shape[1], 3 * k), out.numpy())
    finally:
        numba.set_num_threads(before)
    return out
