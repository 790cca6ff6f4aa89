"""The sparse products of TopK training, with hand-written backward passes (tests/test_gradients.py
checks each against dense autograd).

Training touches only the active latents: pre-activations are computed once outside the graph, and
the gradients of the encoder and decoder are written straight onto the selected entries
(`GatherActive`, `SparseDecode`), so the backward pass costs O(B k d_in) instead of two dense
matmuls the size of the forward one plus embedding_bag's sort of the B*k indices."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

# Under CPU autocast (Lightning's bf16-mixed) the sparse products run in float32 with autocast off,
# inputs cast to it: torch's MKL sparse CSR matmul has no bfloat16 kernel, and these products touch
# only the k active entries per row, so float32 costs little; the dense encoder matmul that
# picks them is the one autocast speeds up. custom_bwd runs backward under forward's autocast state.
_FLOAT32 = torch.amp.custom_fwd(device_type="cpu", cast_inputs=torch.float32)
_SAME_AS_FORWARD = torch.amp.custom_bwd(device_type="cpu")


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
            s = torch.sparse_csr_tensor(
                self._crow(),
                self.idx.to(torch.int32),
                a.new_zeros(self.idx.numel()),
                (self.n_rows, self.d_sae),
                check_invariants=False,
            )
        return torch.sparse.sampled_addmm(s, a, b.t(), beta=0.0).values()

    def t_matmul(self, values: Tensor, dense: Tensor) -> Tensor:
        """Sᵀ @ dense for S the [B, d_sae] matrix holding `values` at the active entries: [d_sae, d]."""
        if self._by_latent is None:
            from .latent_order import latent_order  # numba: loaded by the first backward, not by inference

            self._by_latent = latent_order(self.idx, self.offsets, self.d_sae)
        crow, order, rows = self._by_latent
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            st = torch.sparse_csr_tensor(crow, rows, values[order], (self.d_sae, self.n_rows), check_invariants=False)
        return st @ dense


class GatherActive(torch.autograd.Function):
    """vals: the pre-activations at the active entries, computed (with pre) outside any graph, where
    pre = x W_enc + b_enc - b_dec W_enc. Backward writes only what those entries reach, with G the
    sparse [B, d_sae] gradient: dW_enc = (x - b_dec)ᵀ G, db_enc = colsum(G), db_dec = -W_enc db_enc."""

    @staticmethod
    @_FLOAT32
    def forward(
        ctx,
        vals: Tensor,
        W_enc: Tensor,
        b_enc: Tensor,
        b_dec: Tensor,
        x: Tensor,  # noqa: ANN001
        pattern: ActivePattern,
    ) -> Tensor:
        ctx.save_for_backward(W_enc, b_dec, x)
        ctx.pattern = pattern
        return vals.clone()

    @staticmethod
    @_SAME_AS_FORWARD
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


class SparseDecode(torch.autograd.Function):
    """x_hat[b] = sum over b's active entries e of vals[e] * W_dec[idx[e]] (`F.embedding_bag`).

    Backward without embedding_bag's own (a sort of the B*k indices and a dense gradient on every
    step): dL/dvals = <g_b, W_dec[idx_e]> read at the active entries only, and dL/dW_dec = Sᵀ g,
    which touches only the active rows."""

    @staticmethod
    @_FLOAT32
    def forward(ctx, vals: Tensor, W_dec: Tensor, pattern: ActivePattern) -> Tensor:  # noqa: ANN001
        ctx.save_for_backward(vals, W_dec)
        ctx.pattern = pattern
        return F.embedding_bag(pattern.idx, W_dec, pattern.offsets, mode="sum", per_sample_weights=vals)

    @staticmethod
    @_SAME_AS_FORWARD
    def backward(ctx, grad: Tensor):  # noqa: ANN205
        vals, W_dec = ctx.saved_tensors
        pattern: ActivePattern = ctx.pattern
        grad = grad.contiguous()
        grad_vals = pattern.sampled(grad, W_dec) if ctx.needs_input_grad[0] else None
        grad_W = pattern.t_matmul(vals, grad) if ctx.needs_input_grad[1] else None
        return grad_vals, grad_W, None
