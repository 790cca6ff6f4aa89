"""TopK SAE (Gao et al. 2024, "Scaling and evaluating sparse autoencoders"): exactly the k largest
latents fire, so sparsity needs no penalty; AuxK revives dead latents. Decoding reads only the k
active decoder rows; AuxK works on the dead latents' slice of the dictionary only.

Training touches only the active latents: pre-activations are computed once outside the graph, and
the gradients of the encoder and decoder are written straight onto the selected entries
(`_GatherActive`, `_SparseDecode`), so the backward pass costs O(B k d_in) instead of two dense
matmuls the size of the forward one plus embedding_bag's sort of the B*k indices."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import SAEConfig, SAEOutput, SparseAutoencoder, densify
from .latent_order import latent_order
from .topk_kernel import supports, topk_indices


def fvu(x_hat: Tensor, x: Tensor) -> Tensor:
    """Fraction of variance unexplained, sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 over the batch.

    Scale-free, so one learning rate fits any embedding norm. 0 when x has no variance (an AuxK
    residual that is already 0 leaves nothing to explain), rather than NaN.
    """
    variance = (x - x.mean(0)).pow(2).sum()
    # mse_loss: one fused kernel forwards and one backwards, where (x_hat - x).pow(2).sum() is three and two
    ratio = F.mse_loss(x_hat, x, reduction="sum") / variance.clamp_min(1e-12)
    return torch.where(variance > 1e-12, ratio, torch.zeros_like(ratio))


class ActivePattern:
    """Where the active latents of a batch sit: entry e is latent idx[e] of sample row(e), with
    rows grouped by offsets (the layout `F.embedding_bag` reads). Its sparse-matrix forms, built
    once per batch and only when a gradient needs them, let the backward passes touch the active
    entries alone instead of a dense [B, d_sae] gradient and two matmuls the size of the forward."""

    def __init__(self, idx: Tensor, offsets: Tensor, d_sae: int) -> None:
        self.idx, self.offsets, self.d_sae = idx, offsets, d_sae
        self._by_latent: tuple[Tensor, Tensor, Tensor] | None = None

    @property
    def n_rows(self) -> int:
        return self.offsets.numel()

    def _crow(self) -> Tensor:
        return torch.cat([self.offsets, self.offsets.new_tensor([self.idx.numel()])]).to(torch.int32)

    def sampled(self, a: Tensor, b: Tensor) -> Tensor:
        """(a @ bᵀ) read at the active entries only, in entry order: a [B, d], b [d_sae, d]."""
        with warnings.catch_warnings():  # torch calls its CSR support beta: noise in every log
            warnings.simplefilter("ignore", UserWarning)
            s = torch.sparse_csr_tensor(self._crow(), self.idx.to(torch.int32), a.new_zeros(self.idx.numel()),
                                        (self.n_rows, self.d_sae), check_invariants=False)
        return torch.sparse.sampled_addmm(s, a, b.t(), beta=0.0).values()

    def t_matmul(self, values: Tensor, dense: Tensor) -> Tensor:
        """Sᵀ @ dense for S the [B, d_sae] matrix holding `values` at the active entries: [d_sae, d]."""
        if self._by_latent is None:
            self._by_latent = latent_order(self.idx, self.offsets, self.d_sae)
        crow, order, rows = self._by_latent
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            st = torch.sparse_csr_tensor(crow, rows, values[order], (self.d_sae, self.n_rows), check_invariants=False)
        return st @ dense


class _GatherActive(torch.autograd.Function):
    """vals: the pre-activations at the active entries, computed (with pre) outside any graph, where
    pre = x W_enc + b_enc - b_dec W_enc. Backward writes only what those entries reach, with G the
    sparse [B, d_sae] gradient: dW_enc = (x - b_dec)ᵀ G, db_enc = colsum(G), db_dec = -W_enc db_enc."""

    @staticmethod
    def forward(ctx, vals: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor, x: Tensor,  # noqa: ANN001
                pattern: ActivePattern) -> Tensor:
        ctx.save_for_backward(W_enc, b_dec, x)
        ctx.pattern = pattern
        return vals.clone()

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: ANN205
        W_enc, b_dec, x = ctx.saved_tensors
        pattern: ActivePattern = ctx.pattern
        grad = grad.contiguous()
        grad_W = grad_b = grad_b_dec = None
        if ctx.needs_input_grad[1]:
            grad_W = pattern.t_matmul(grad, x - b_dec).t()
        if ctx.needs_input_grad[2] or ctx.needs_input_grad[3]:
            grad_b = grad.new_zeros(pattern.d_sae).index_add_(0, pattern.idx, grad)
            if ctx.needs_input_grad[3]:
                grad_b_dec = -(W_enc @ grad_b)
        return None, grad_W, grad_b, grad_b_dec, None, None


class _SparseDecode(torch.autograd.Function):
    """x_hat[b] = sum over b's active entries e of vals[e] * W_dec[idx[e]] (`F.embedding_bag`).

    Backward without embedding_bag's own (a sort of the B*k indices and a dense gradient on every
    step): dL/dvals = <g_b, W_dec[idx_e]> read at the active entries only, and dL/dW_dec = Sᵀ g,
    which touches only the active rows."""

    @staticmethod
    def forward(ctx, vals: Tensor, W_dec: Tensor, pattern: ActivePattern) -> Tensor:  # noqa: ANN001
        ctx.save_for_backward(vals, W_dec)
        ctx.pattern = pattern
        return F.embedding_bag(pattern.idx, W_dec, pattern.offsets, mode="sum", per_sample_weights=vals)

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: ANN205
        vals, W_dec = ctx.saved_tensors
        pattern: ActivePattern = ctx.pattern
        grad = grad.contiguous()
        grad_vals = pattern.sampled(grad, W_dec) if ctx.needs_input_grad[0] else None
        grad_W = pattern.t_matmul(vals, grad) if ctx.needs_input_grad[1] else None
        return grad_vals, grad_W, None


class TopKSAE(SparseAutoencoder, architecture="topk"):
    """z = TopK_k(ReLU(pre));  L = fvu + aux_coefficient * AuxK."""

    config_fields = ("k", "aux_k", "aux_coefficient", "dead_after_samples", "select_dtype")
    saelens_architecture = "topk"
    bf16_select_ok = True  # a per-sample top-k: a near-tie flipped by rounding changes one sample's pick only

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
        if supports(pre, k):  # CPU: a threshold kernel, ~3x faster than torch.topk at these shapes
            idx = topk_indices(pre, k)
            vals = pre.gather(1, idx)
        else:
            vals, idx = pre.topk(k, dim=-1, sorted=False)
        offsets = torch.arange(0, pre.shape[0] * k, k, device=pre.device)
        return idx.flatten(), vals.relu().flatten(), offsets

    def activate(self, pre: Tensor) -> Tensor:
        return densify(*self.select(pre), pre.shape[-1])

    def decode_sparse(
        self, idx: Tensor, vals: Tensor, offsets: Tensor, *, bias: bool = True
    ) -> Tensor:
        return self._decode(ActivePattern(idx, offsets, self.cfg.d_sae), vals, bias=bias)

    def _decode(self, pattern: ActivePattern, vals: Tensor, *, bias: bool = True) -> Tensor:
        # Reads (and, backwards, updates) only the active rows of W_dec: the cost scales with k,
        # not d_sae.
        vals = vals.to(self.W_dec.dtype)
        if self.W_dec.device.type == "cpu":
            out = _SparseDecode.apply(vals, self.W_dec, pattern)
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
            vals = _GatherActive.apply(vals, self.W_enc, self.b_enc, self.b_dec, x, pattern).relu()
        x_hat = self._decode(pattern, vals)
        return SAEOutput(x_hat=x_hat, pre=pre, idx=idx, vals=vals, offsets=offsets)

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
            pre = torch.addmm(self.b_enc.index_select(0, dead) - W_enc_dead @ self.b_dec, x.to(W_enc_dead.dtype),
                              W_enc_dead.t())
        with torch.no_grad():
            pick = pre.topk(k_aux, dim=-1, sorted=False).indices
        vals = pre.gather(1, pick).relu()
        z_dead = vals.new_zeros(len(vals), n_dead).scatter(1, pick, vals)
        # e already excludes b_dec, so the dead latents' reconstruction must not add it again.
        e_hat = z_dead @ self.W_dec.index_select(0, dead)
        # Few dead latents reconstruct less; scale down rather than demand it (EleutherAI sparsify).
        return min(n_dead / self.cfg.aux_k, 1.0) * fvu(e_hat, (x - out.x_hat).detach())
