"""TopK SAE (Gao et al. 2024, "Scaling and evaluating sparse autoencoders"): exactly the k largest
latents fire, so sparsity needs no penalty; AuxK revives dead latents. Decoding reads only the k
active decoder rows."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import SAEConfig, SAEOutput, SparseAutoencoder, densify


def fvu(x_hat: Tensor, x: Tensor) -> Tensor:
    """Fraction of variance unexplained, sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 over the batch.

    Scale-free, so one learning rate fits any embedding norm. 0 when x has no variance (an AuxK
    residual that is already 0 leaves nothing to explain), rather than NaN.
    """
    variance = (x - x.mean(0)).pow(2).sum()
    ratio = (x_hat - x).pow(2).sum() / variance.clamp_min(1e-12)
    return torch.where(variance > 1e-12, ratio, torch.zeros_like(ratio))


class TopKSAE(SparseAutoencoder, architecture="topk"):
    """z = TopK_k(ReLU(pre));  L = fvu + aux_coefficient * AuxK."""

    config_fields = ("k", "aux_k", "aux_coefficient", "dead_after_samples")

    @classmethod
    def configure(cls, cfg: SAEConfig) -> None:
        if cfg.k is None or not 0 < cfg.k < cfg.d_sae:
            raise ValueError(
                f"{cfg.architecture} needs 0 < k < d_sae, got k={cfg.k}, d_sae={cfg.d_sae}; "
                "set k to the number of active latents per input (e.g. 32) below d_sae"
            )
        if cfg.aux_k <= 0:
            raise ValueError(f"aux_k={cfg.aux_k} must be positive; leave it None for d_in // 2")

    def select(self, pre: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The active latents as (idx, vals, offsets), the form `decode_sparse` reads."""
        k = self.cfg.k
        vals, idx = pre.topk(k, dim=-1, sorted=False)
        offsets = torch.arange(0, pre.shape[0] * k, k, device=pre.device)
        return idx.flatten(), vals.relu().flatten(), offsets

    def activate(self, pre: Tensor) -> Tensor:
        return densify(*self.select(pre), pre.shape[-1])

    def decode_sparse(
        self, idx: Tensor, vals: Tensor, offsets: Tensor, *, bias: bool = True
    ) -> Tensor:
        # embedding_bag gathers (and, backwards, updates) only the active rows of W_dec: the cost
        # scales with k, not d_sae.
        out = F.embedding_bag(
            idx, self.W_dec, offsets, mode="sum", per_sample_weights=vals.to(self.W_dec.dtype)
        )
        return out + self.b_dec if bias else out

    def forward(self, x: Tensor) -> SAEOutput:
        pre = self.encode_pre(x)
        idx, vals, offsets = self.select(pre)
        x_hat = self.decode_sparse(idx, vals, offsets)
        return SAEOutput(x_hat=x_hat, pre=pre, idx=idx, vals=vals, offsets=offsets)

    def loss_terms(
        self, x: Tensor, out: SAEOutput, *, step: int = 0, dead_mask: Tensor | None = None
    ) -> dict[str, Tensor]:
        x = x.to(out.x_hat.dtype)
        main = fvu(out.x_hat, x)
        auxk = self.auxk_loss(x, out, dead_mask)
        return {"loss": main + self.cfg.aux_coefficient * auxk, "fvu": main, "auxk": auxk}

    def auxk_loss(self, x: Tensor, out: SAEOutput, dead_mask: Tensor | None) -> Tensor:
        """The top aux_k dead latents reconstruct what the live ones missed, e = x - x_hat, which
        gives dead latents a gradient towards useful directions."""
        zero = out.x_hat.new_zeros(())
        if dead_mask is None:
            return zero
        dead_mask = dead_mask.to(out.pre.device)
        n_dead = int(dead_mask.sum())  # the size of the top-k needs it on the host
        if n_dead == 0:
            return zero
        k_aux = min(self.cfg.aux_k, n_dead)
        vals, idx = out.pre.masked_fill(~dead_mask, float("-inf")).topk(k_aux, dim=-1, sorted=False)
        offsets = torch.arange(0, idx.numel(), k_aux, device=idx.device)
        # e already excludes b_dec, so the dead latents' reconstruction must not add it again.
        e_hat = self.decode_sparse(idx.flatten(), vals.relu().flatten(), offsets, bias=False)
        # Few dead latents reconstruct less; scale down rather than demand it (EleutherAI sparsify).
        return min(n_dead / self.cfg.aux_k, 1.0) * fvu(e_hat, (x - out.x_hat).detach())
