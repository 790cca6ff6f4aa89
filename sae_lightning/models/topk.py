"""TopK SAE (Gao et al. 2024, "Scaling and evaluating sparse autoencoders"): exactly the k largest
latents fire, so sparsity needs no penalty; AuxK revives dead latents. Decoding reads only the k
active decoder rows; AuxK works on the dead latents' slice of the dictionary only. On CPU, training
runs the sparse products of kernels/active.py and the top-k kernel of kernels/topk_kernel.py."""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from torch import Tensor

from ..schemas.sae import TopKConfig
from .base import SparseAutoencoder
from .kernels.active import ActivePattern, GatherActive, SparseDecode
from .output import SAEOutput, densify


def fvu(x_hat: Tensor, x: Tensor) -> Tensor:
    """Fraction of variance unexplained, sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 over the batch.

    Scale-free, so one learning rate fits any embedding norm. 0 when x has no variance (an AuxK
    residual that is already 0 leaves nothing to explain), rather than NaN.
    """
    variance = (x - x.mean(0)).pow(2).sum()
    # mse_loss: one fused kernel forwards and one backwards, where (x_hat - x).pow(2).sum() is three and two
    ratio = F.mse_loss(x_hat, x, reduction="sum") / variance.clamp_min(1e-12)
    return torch.where(variance > 1e-12, ratio, torch.zeros_like(ratio))


# Fewer rows than this (a search query, a handful of texts) go through torch.topk: there the
# kernel's speed is nothing beside loading numba and the compiled kernel (~0.5-1 s of a command).
KERNEL_MIN_ROWS = 64
KERNEL_MODULE = f"{__package__}.kernels.topk_kernel"


def _kernel_topk(pre: Tensor, k: int, training: bool) -> Tensor | None:
    """The CPU threshold kernel's top-k indices (~3x faster than torch.topk at training shapes),
    or None where it does not apply (GPU, other dtypes, few rows) or does not pay: an SAE that only
    encodes (sae-diff, sae-label, the API) in a process that has not loaded the kernel. Loading
    numba and the compiled kernel takes ~0.6 s, which the kernel wins back only after ~250,000 rows
    (2.3 against 4.9 ms per 1,000 rows at d_sae 3072); a fit loads it at its first step, and its
    validation and labelling then use it too."""
    if pre.ndim != 2 or pre.shape[0] < KERNEL_MIN_ROWS or pre.device.type != "cpu":
        return None
    if not training and KERNEL_MODULE not in sys.modules:
        return None
    from .kernels.topk_kernel import supports, topk_indices

    return topk_indices(pre, k) if supports(pre, k) else None


class TopKSAE(SparseAutoencoder, architecture="topk"):
    """z = TopK_k(ReLU(pre));  L = fvu + aux_coefficient * AuxK."""

    config_class = TopKConfig
    config_fields = ("k", "aux_k", "aux_coefficient", "dead_after_samples", "select_dtype")
    saelens_architecture = "topk"
    bf16_select_ok = True  # a per-sample top-k: a near-tie flipped by rounding changes one sample's pick only

    def select(self, pre: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The active latents as (idx, vals, offsets), the form `decode_sparse` reads."""
        k = self.cfg.k
        idx = _kernel_topk(pre, k, self.training)
        if idx is not None:
            vals = pre.gather(1, idx)
        else:
            vals, idx = pre.topk(k, dim=-1, sorted=False)
        offsets = torch.arange(0, pre.shape[0] * k, k, device=pre.device)
        return idx.flatten(), vals.relu().flatten(), offsets

    def activate(self, pre: Tensor) -> Tensor:
        return densify(*self.select(pre), pre.shape[-1])

    def decode_sparse(self, idx: Tensor, vals: Tensor, offsets: Tensor, *, bias: bool = True) -> Tensor:
        return self._decode(ActivePattern(idx, offsets, self.cfg.d_sae), vals, bias=bias)

    def _decode(self, pattern: ActivePattern, vals: Tensor, *, bias: bool = True) -> Tensor:
        # Reads (and, backwards, updates) only the active rows of W_dec: the cost scales with k,
        # not d_sae.
        vals = vals.to(self.W_dec.dtype)
        if self.W_dec.device.type == "cpu":
            out = SparseDecode.apply(vals, self.W_dec, pattern)
        else:  # the CSR backward is measured on CPU only; CUDA's embedding_bag backward is fast
            out = F.embedding_bag(pattern.idx, self.W_dec, pattern.offsets, mode="sum", per_sample_weights=vals)
        return out + self.b_dec if bias else out

    def forward(self, x: Tensor) -> SAEOutput:
        # The sparse encoder gradient is measured on CPU only (benchmarks/); a gradient w.r.t. the
        # input itself needs the dense graph.
        if x.requires_grad or x.device.type != "cpu":
            pre = self.encode_pre(x)
            idx, vals, offsets = self.select(pre)
            pattern = ActivePattern(idx, offsets, self.cfg.d_sae)
        else:
            x = x.to(self.W_enc.dtype)
            with torch.no_grad():
                pre, idx, vals, offsets = self._select_no_grad(x)
            pattern = ActivePattern(idx, offsets, self.cfg.d_sae)
            # select() hands back ReLU'd values; the second ReLU gives them its gradient mask.
            vals = GatherActive.apply(vals, self.W_enc, self.b_enc, self.b_dec, x, pattern).relu()
        x_hat = self._decode(pattern, vals)
        return SAEOutput(x_hat=x_hat, pre=pre, idx=idx, vals=vals, offsets=offsets)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> SAEOutput:
        # encode's float32 selection (never select_dtype's), decoded from the k active rows: the dense
        # z @ W_dec of decode() and the passes over a dense z were ~2/3 of a default run's validation
        pre = self.encode_pre(x)
        idx, vals, offsets = self.select(pre)
        return SAEOutput(x_hat=self.decode_sparse(idx, vals, offsets), pre=pre, idx=idx, vals=vals, offsets=offsets)

    def _select_no_grad(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """pre, idx, vals, offsets. With select_dtype bfloat16 only the choice of the k latents is
        made in bf16 (a near-tie at the k-th place may go the other way); their values are then
        computed in float32 at the chosen entries alone, so activations and gradients stay exact."""
        if self.cfg.select_dtype == "float32" or not self.bf16_select_ok:
            pre = self.encode_pre(x)
            return (pre, *self.select(pre))
        pre = self.encode_pre(x, torch.bfloat16)
        idx, _, offsets = self.select(pre)
        pattern = ActivePattern(idx, offsets, self.cfg.d_sae)
        vals = pattern.sampled(x - self.b_dec, self.W_enc.t()) + self.b_enc[idx]
        return pre, idx, vals.relu(), offsets

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
        # Only the dead latents' slice of the dictionary is used (their pre-activations computed
        # again, with a graph): the cost scales with n_dead, few once training has settled.
        dead = dead_mask.nonzero().squeeze(1)
        if out.pre.requires_grad:  # forward() built the dense graph
            pre = out.pre.index_select(1, dead)
        else:
            # Rows of W_encᵀ rather than columns of W_enc: the gradient then comes back in the layout
            # of the main path's (W_enc is stored column-major), and adding the two costs one plain
            # add instead of a strided copy (~6 ms of a batch-512 step with 30 dead latents).
            W_enc_dead = self.W_enc.t().index_select(0, dead)
            pre = torch.addmm(
                self.b_enc.index_select(0, dead) - W_enc_dead @ self.b_dec, x.to(W_enc_dead.dtype), W_enc_dead.t()
            )
        with torch.no_grad():
            pick = pre.topk(k_aux, dim=-1, sorted=False).indices
        vals = pre.gather(1, pick).relu()
        z_dead = vals.new_zeros(len(vals), n_dead).scatter(1, pick, vals)
        # e already excludes b_dec, so the dead latents' reconstruction must not add it again.
        e_hat = z_dead @ self.W_dec.index_select(0, dead)
        # Few dead latents reconstruct less; scale down rather than demand it (EleutherAI sparsify).
        return min(n_dead / self.cfg.aux_k, 1.0) * fvu(e_hat, (x - out.x_hat).detach())
