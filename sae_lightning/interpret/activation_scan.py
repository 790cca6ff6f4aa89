"""Streaming passes of an SAE over store rows: per-feature top examples and statistics (train
split) and the positive/negative texts that labels are scored on (validation split).

Memory is O(d_sae x k) however many rows are read: each batch's activations are merged into a
running per-feature top-k (a sort of the batch's nonzero entries on the train split, `torch.topk`
on the small validation split) and then dropped, never O(rows x d_sae)."""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from ..store import EmbeddingStore
from .threads import single_threaded


class RunningTopK:
    """The k largest scores per feature seen so far, with the store row each came from (dense
    batches: used on the small validation split, where negatives need the zeros too)."""

    def __init__(self, n_features: int, k: int, device: torch.device) -> None:
        self.k = k
        self.values = torch.full((n_features, k), float("-inf"), device=device)
        self.rows = torch.full((n_features, k), -1, dtype=torch.long, device=device)

    def update(self, scores: torch.Tensor, rows: torch.Tensor) -> None:
        """scores [B, n_features], rows [B] (store row numbers)."""
        k_b = min(self.k, scores.shape[0])
        vals, pick = scores.topk(k_b, dim=0)  # [k_b, F]: the batch's best first, then one small merge
        merged = torch.cat([self.values, vals.T], dim=1)
        self.values, best = merged.topk(self.k, dim=1)
        from_old = best < self.k
        old_rows = self.rows.gather(1, best.clamp_max(self.k - 1))
        new_rows = rows[pick.T.gather(1, (best - self.k).clamp_min(0))]
        self.rows = torch.where(from_old, old_rows, new_rows)


class SparseRunningTopK(RunningTopK):
    """The same from the nonzero (feature, row, value) triples of a batch: a sparse SAE fires
    k of d_sae latents per row, so sorting its triples beats a top-k over the dense batch."""

    def update_sparse(self, feat: torch.Tensor, rows: torch.Tensor, vals: torch.Tensor) -> None:
        with single_threaded():  # small ops: see threads.py
            self._update_sparse(feat, rows, vals)

    def _update_sparse(self, feat: torch.Tensor, rows: torch.Tensor, vals: torch.Tensor) -> None:
        n_features, k = self.values.shape
        keep = vals > self.values[feat, -1]  # cannot enter a full top-k: dropped before sorting
        feat, rows, vals = feat[keep], rows[keep], vals[keep]
        if not feat.numel():
            return
        f = torch.cat([torch.arange(n_features, device=feat.device).repeat_interleave(k), feat])
        v = torch.cat([self.values.flatten(), vals])
        r = torch.cat([self.rows.flatten(), rows])
        # torch.sort, not torch.argsort(stable=True): the latter was far slower on int keys with many
        # ties in our measurements (torch 2.x CPU)
        order = torch.sort(v, descending=True, stable=True).indices  # best first ...
        order = order[torch.sort(f[order], stable=True).indices]  # ... within each feature
        f, v, r = f[order], v[order], r[order]
        counts = torch.bincount(f, minlength=n_features)
        rank = torch.arange(f.numel(), device=f.device) - (torch.cumsum(counts, 0) - counts)[f]
        top = rank < k
        self.values[f[top], rank[top]] = v[top]
        self.rows[f[top], rank[top]] = r[top]


@dataclass
class TopExamples:
    """What the train-split pass found. Slots past a feature's firing count hold act 0, row -1."""

    acts: np.ndarray  # [d_sae, m] float32, descending
    rows: np.ndarray  # [d_sae, m] int64 store rows
    fire_counts: np.ndarray  # [d_sae] int64: rows the feature fired on (act > 0)
    domain_mass: np.ndarray  # [d_sae, n_domains] float64: summed activation per domain
    domains: list[str]  # column names of domain_mass
    n_rows: int  # rows scanned

    @property
    def density(self) -> np.ndarray:
        return self.fire_counts / max(self.n_rows, 1)

    @property
    def dead(self) -> np.ndarray:
        return self.fire_counts == 0


@dataclass
class ScoringSets:
    """Validation rows a label is scored on, per feature; -1 pads a short list."""

    pos_rows: np.ndarray  # [d_sae, m_pos]: top-activating rows with act > 0
    neg_rows: np.ndarray  # [d_sae, n_negatives]: a seeded uniform sample of rows with act == 0


@contextlib.contextmanager
def inference_sae(sae: torch.nn.Module, device: str | torch.device | None) -> Iterator[torch.nn.Module]:
    """The SAE in eval mode (BatchTopK switches to its threshold) on the requested device; the
    caller's module keeps its mode and device (a training run goes on with it)."""
    here = next(sae.parameters()).device
    target = torch.device(device) if device is not None else here
    model = sae if target == here else copy.deepcopy(sae).to(target)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def iter_activations(sae, store: EmbeddingStore, rows: np.ndarray, batch_size: int
                     ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(row numbers [B], dense activations [B, d_sae]) per batch; rows are read from the memory
    map in sorted order, one fancy-index read per batch."""
    device = next(sae.parameters()).device
    rows = np.sort(np.asarray(rows, dtype=np.int64))
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size]
        x = torch.from_numpy(np.asarray(store.embeddings[batch], dtype=np.float32)).to(device)
        yield torch.from_numpy(batch).to(device), sae.encode(x).float()


def domain_codes(store: EmbeddingStore) -> tuple[np.ndarray, list[str]]:
    """Per store row, the index of its domain in the sorted list of the store's domains."""
    domains = store.metadata()["domain"].astype(str).to_numpy()
    names, codes = np.unique(domains, return_inverse=True)
    return codes.astype(np.int64), [str(n) for n in names]


def top_examples(sae, store: EmbeddingStore, train_idx: np.ndarray, m: int = 15, batch_size: int = 4096,
                 device: str | None = None) -> TopExamples:
    codes, domains = domain_codes(store)
    codes_t = torch.from_numpy(codes)
    with inference_sae(sae, device) as model:
        dev = next(model.parameters()).device
        d_sae = model.cfg.d_sae
        top = SparseRunningTopK(d_sae, m, dev)
        counts = torch.zeros(d_sae, dtype=torch.long, device=dev)
        mass = torch.zeros(d_sae * len(domains), dtype=torch.float64, device=dev)
        codes_t = codes_t.to(dev)
        for rows, acts in iter_activations(model, store, train_idx, batch_size):  # encoder: caller's threads
            with single_threaded():  # the bookkeeping is small ops (threads.py)
                r, f = (acts > 0).nonzero(as_tuple=True)  # negative outputs do not count as firing
                v = acts[r, f]
                top.update_sparse(f, rows[r], v)
                counts += torch.bincount(f, minlength=d_sae)
                mass.index_add_(0, f * len(domains) + codes_t[rows[r]], v.double())
        mass = mass.view(d_sae, len(domains))
    acts_np = top.values.clamp_min(0).cpu().numpy()
    rows_np = top.rows.cpu().numpy()
    rows_np[acts_np <= 0] = -1  # a feature that fired on fewer than m rows: the rest is padding
    acts_np[rows_np < 0] = 0.0
    return TopExamples(acts=acts_np.astype(np.float32), rows=rows_np, fire_counts=counts.cpu().numpy(),
                       domain_mass=mass.cpu().numpy(), domains=domains, n_rows=int(len(train_idx)))


def scoring_sets(sae, store: EmbeddingStore, val_idx: np.ndarray, m_pos: int = 10, n_negatives: int = 200,
                 seed: int = 0, batch_size: int = 4096, device: str | None = None) -> ScoringSets:
    """Positives: each feature's m_pos top-activating validation rows. Negatives: of the
    validation rows where it is exactly 0, the n_negatives with the largest of a seeded uniform
    key per row, i.e. a uniform sample without replacement that one streaming top-k can draw."""
    val_idx = np.sort(np.asarray(val_idx, dtype=np.int64))
    key = np.zeros(len(store), dtype=np.float32)
    key[val_idx] = np.random.default_rng(seed).random(len(val_idx), dtype=np.float32)
    key_t = torch.from_numpy(key)
    with inference_sae(sae, device) as model:
        dev = next(model.parameters()).device
        d_sae = model.cfg.d_sae
        pos = RunningTopK(d_sae, min(m_pos, max(len(val_idx), 1)), dev)
        neg = RunningTopK(d_sae, min(n_negatives, max(len(val_idx), 1)), dev)
        for rows, acts in iter_activations(model, store, val_idx, batch_size):
            with single_threaded():
                pos.update(acts, rows)
                neg.update(torch.where(acts == 0, key_t[rows.cpu()].to(dev)[:, None], -1.0), rows)
    pos_rows = torch.where(pos.values > 0, pos.rows, -1).cpu().numpy()
    neg_rows = torch.where(neg.values >= 0, neg.rows, -1).cpu().numpy()
    return ScoringSets(pos_rows=pos_rows, neg_rows=neg_rows)
