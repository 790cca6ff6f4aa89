"""One forward pass of an SAE, dense or in the sparse (idx, vals, offsets) form of TopK variants."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(eq=False)
class SAEOutput:
    """One forward pass. Sparse variants fill idx/vals/offsets (the active latents, grouped per
    sample as `F.embedding_bag` reads them) and build the dense `z` only when it is asked for."""

    x_hat: Tensor  # [B, d_in]
    pre: Tensor  # [B, d_sae] pre-activations: AuxK and diagnostics read them
    latents: Tensor | None = None  # dense z [B, d_sae], when the variant computes it anyway
    idx: Tensor | None = None  # [nnz] latent index of each active entry
    vals: Tensor | None = None  # [nnz] its activation
    offsets: Tensor | None = None  # [B] where each sample's entries start in idx/vals

    @property
    def z(self) -> Tensor:
        if self.latents is None:
            self.latents = densify(self.idx, self.vals, self.offsets, self.pre.shape[-1])
        return self.latents

    @property
    def fire_counts(self) -> Tensor:
        """[d_sae] how many samples of the batch each latent fired on (dead/density statistics)."""
        if self.latents is None and self.idx is not None:
            fired = (self.vals > 0).long()
            return torch.zeros_like(self.pre[0], dtype=torch.long).index_add_(0, self.idx, fired)
        return (self.z > 0).sum(0)

    @property
    def l0(self) -> Tensor:
        """Mean number of active latents per input."""
        if self.latents is None and self.idx is not None:
            return (self.vals > 0).sum() / self.pre.shape[0]
        return (self.z > 0).sum(-1).float().mean()


def densify(idx: Tensor, vals: Tensor, offsets: Tensor, d_sae: int) -> Tensor:
    """Scatter the sparse (idx, vals, offsets) form into a dense [B, d_sae] tensor."""
    counts = torch.diff(offsets, append=offsets.new_tensor([idx.numel()]))
    rows = torch.repeat_interleave(torch.arange(offsets.numel(), device=idx.device), counts, output_size=idx.numel())
    return vals.new_zeros(offsets.numel(), d_sae).index_put((rows, idx), vals)
