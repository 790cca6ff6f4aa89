"""The pieces of a streaming pass of an SAE over store rows (stream.py runs the pass): batches of
activations, the running per-feature top-k and what it yields (TopExamples).

Memory is O(d_sae x k) however many rows are read: each batch's activations are merged into a
running per-feature top-k (a sort of the batch's nonzero entries) and then dropped, never
O(rows x d_sae)."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..data.store import EmbeddingStore


class RunningTopK:
    """The k largest scores per feature seen so far, with the store row each came from."""

    def __init__(self, n_features: int, k: int, device: torch.device) -> None:
        self.k = k
        self.values = torch.full((n_features, k), float("-inf"), device=device)
        self.rows = torch.full((n_features, k), -1, dtype=torch.long, device=device)


class SparseRunningTopK(RunningTopK):
    """The same from the nonzero (feature, row, value) triples of a batch: a sparse SAE fires
    k of d_sae latents per row, so sorting its triples beats a top-k over the dense batch."""

    def update_sparse(self, feat: torch.Tensor, rows: torch.Tensor, vals: torch.Tensor) -> None:
        self._update_sparse(feat, rows, vals)  # small ops: callers run it under limited_threads

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

    def first(self, m: int) -> TopExamples:
        """The same with only each feature's m best rows (a scan that kept more for another stage)."""
        return TopExamples(
            acts=self.acts[:, :m],
            rows=self.rows[:, :m],
            fire_counts=self.fire_counts,
            domain_mass=self.domain_mass,
            domains=self.domains,
            n_rows=self.n_rows,
        )


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


def iter_activations(
    sae, store: EmbeddingStore, rows: np.ndarray, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(row numbers [B], dense activations [B, d_sae]) per batch; rows are read from the memory
    map in sorted order, one fancy-index read per batch."""
    device = next(sae.parameters()).device
    rows = np.sort(np.asarray(rows, dtype=np.int64))
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        x = torch.from_numpy(np.asarray(store.embeddings[batch], dtype=np.float32)).to(device)
        yield torch.from_numpy(batch).to(device), sae.encode(x).float()


def domain_codes(store: EmbeddingStore) -> tuple[np.ndarray, list[str]]:
    """Per store row, the index of its domain in the sorted list of the store's domains."""
    domains = store.metadata()["domain"].astype(str).to_numpy()
    names, codes = np.unique(domains, return_inverse=True)
    return codes.astype(np.int64), [str(n) for n in names]
