"""The one pass of a trained SAE over the store that every post-training stage reads.

    scan = scan_store(sae, store, train_idx, val_idx, m=30)

streams the train and validation rows once, in sorted blocks of `batch_size`, and keeps:

- per feature, its top `m` train rows with their activations, firing count (density) and summed
  activation per domain (TopExamples: labels, coherence, the features table, family names);
- the co-firing counts of feature pairs over the train rows (coactivation.py: families);
- the validation activations where > 0, sparse [d_sae, n_val] (scoring_sets.py: positives,
  negatives and keyword precision/recall).

Memory: O(d_sae·m) for the top examples, the pair counter's bound (coactivation.py), and
O(n_val·k) for the validation firings, which the keyword precision/recall over the whole split
needs; never O(rows × d_sae): each block's dense activations are dropped after it is read.
A row may be in both splits (tests label and score on the same rows); it then counts for both.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse import csr_matrix

from ..data.store import EmbeddingStore
from ..runtime import limited_threads
from .coactivation import DENSE_BYTES, PairCounts
from .top_examples import SparseRunningTopK, TopExamples, domain_codes, inference_sae, iter_activations

log = logging.getLogger(__name__)


@dataclass
class ScanResult:
    top: TopExamples  # train split: top m per feature, firing counts, domain mass
    coactivation: (
        csr_matrix | None
    )  # [d_sae, d_sae] train pairs fired together >= min_cooccur times; firings on the diagonal
    min_cooccur: int  # the smallest pair count kept in `coactivation`
    pairs_dropped_at: int  # 0: every pair count is exact (coactivation.py, sparse mode past its bound)
    val_rows: np.ndarray  # [n_val] sorted store rows of the validation split
    val_firing: csr_matrix  # [d_sae, n_val] validation activations where > 0 (columns index val_rows)

    @property
    def n_train(self) -> int:
        return self.top.n_rows


class _Accumulator:
    """What one scan keeps, fed one block of (store rows, dense activations) at a time."""

    def __init__(self, d_sae: int, m: int, n_domains: int, dev, count_pairs: bool, pair_bytes: int) -> None:
        self.d_sae, self.n_domains = d_sae, n_domains
        self.top = SparseRunningTopK(d_sae, m, dev)
        self.counts = torch.zeros(d_sae, dtype=torch.long, device=dev)
        self.mass = torch.zeros(d_sae * n_domains, dtype=torch.float64, device=dev)
        self.pairs = PairCounts(d_sae, dense_bytes=pair_bytes) if count_pairs else None
        self.val: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def train_block(self, rows: torch.Tensor, acts: torch.Tensor, codes: torch.Tensor) -> None:
        r, f = (acts > 0).nonzero(as_tuple=True)  # negative outputs do not count as firing
        v = acts[r, f]
        self.top.update_sparse(f, rows[r], v)
        self.counts += torch.bincount(f, minlength=self.d_sae)
        self.mass.index_add_(0, f * self.n_domains + codes[rows[r]], v.double())
        if self.pairs is not None:
            self.pairs.add(r.cpu().numpy(), f.cpu().numpy())

    def val_block(self, cols: np.ndarray, acts: torch.Tensor) -> None:
        r, f = (acts > 0).nonzero(as_tuple=True)
        self.val.append((f.cpu().numpy(), cols[r.cpu().numpy()], acts[r, f].cpu().numpy()))


def _val_matrix(parts, d_sae: int, n_val: int) -> csr_matrix:
    def cat(i, dt):
        return np.concatenate([p[i] for p in parts]).astype(dt) if parts else np.zeros(0, dt)

    return csr_matrix((cat(2, np.float32), (cat(0, np.int64), cat(1, np.int64))), shape=(d_sae, n_val))


def scan_store(
    sae,
    store: EmbeddingStore,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    m: int = 30,
    batch_size: int = 4096,
    device: str | None = None,
    min_cooccur: int | None = 2,
    pair_bytes: int = DENSE_BYTES,
    small_op_threads: int | None = None,
) -> ScanResult:
    """One streamed pass over train ∪ validation rows (see the module doc). min_cooccur None:
    no pair counts (`coactivation` is then None)."""
    train_rows = np.unique(np.asarray(train_idx, dtype=np.int64))
    val_rows = np.unique(np.asarray(val_idx, dtype=np.int64))
    rows = np.union1d(train_rows, val_rows)
    is_train, is_val = np.isin(rows, train_rows), np.isin(rows, val_rows)
    val_col = np.searchsorted(val_rows, rows)  # column of a validation row in val_firing
    codes, domains = domain_codes(store)
    with inference_sae(sae, device) as model:
        dev = next(model.parameters()).device
        d_sae = model.cfg.d_sae
        acc = _Accumulator(d_sae, m, len(domains), dev, min_cooccur is not None, pair_bytes)
        codes_t = torch.from_numpy(codes).to(dev)
        start = 0
        for block_rows, acts in iter_activations(model, store, rows, batch_size):  # encoder: caller's threads
            here = slice(start, start + len(block_rows))
            start += len(block_rows)
            with limited_threads(small_op_threads):  # the bookkeeping is small ops (runtime.limited_threads)
                train_mask = torch.from_numpy(is_train[here]).to(dev)
                if bool(train_mask.all()):
                    acc.train_block(block_rows, acts, codes_t)
                elif bool(train_mask.any()):
                    acc.train_block(block_rows[train_mask], acts[train_mask], codes_t)
                val_mask = is_val[here]
                if val_mask.any():
                    acc.val_block(val_col[here][val_mask], acts[torch.from_numpy(val_mask).to(dev)])
    top = acc.top
    acts_np = top.values.clamp_min(0).cpu().numpy()
    rows_np = top.rows.cpu().numpy()
    rows_np[acts_np <= 0] = -1  # a feature that fired on fewer than m rows: the rest is padding
    acts_np[rows_np < 0] = 0.0
    examples = TopExamples(
        acts=acts_np.astype(np.float32),
        rows=rows_np,
        fire_counts=acc.counts.cpu().numpy(),
        domain_mass=acc.mass.view(d_sae, len(domains)).cpu().numpy(),
        domains=domains,
        n_rows=int(len(train_rows)),
    )
    pairs = acc.pairs
    if pairs is not None and pairs.dropped_at:
        log.warning(
            "more than %d distinct feature pairs fired together: the rarest were dropped, so pair counts "
            "up to %d may be undercounted (families near that count can be missed)",
            pairs.max_pairs,
            pairs.dropped_at,
        )
    return ScanResult(
        top=examples,
        coactivation=pairs.result(min_cooccur) if pairs else None,
        min_cooccur=int(min_cooccur or 0),
        pairs_dropped_at=pairs.dropped_at if pairs else 0,
        val_rows=val_rows,
        val_firing=_val_matrix(acc.val, d_sae, len(val_rows)),
    )


def top_examples(
    sae,
    store: EmbeddingStore,
    train_idx: np.ndarray,
    m: int = 15,
    batch_size: int = 4096,
    device: str | None = None,
    small_op_threads: int | None = None,
) -> TopExamples:
    """Only the train split's top examples and statistics (search and tests; labelling scans once)."""
    return scan_store(
        sae,
        store,
        train_idx,
        np.zeros(0, np.int64),
        m,
        batch_size,
        device,
        min_cooccur=None,
        small_op_threads=small_op_threads,
    ).top
