"""BatchTopK SAE (Bussmann et al. 2024): the k*B largest latents of the whole batch fire, so
inputs share a sparsity budget; inference, which has no batch, uses a threshold learned along."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import SAEConfig, SAEOutput
from .topk import TopKSAE


class BatchTopKSAE(TopKSAE, architecture="batchtopk"):
    """Training: z = BatchTopK_{k*B}(ReLU(pre)). Eval: z = ReLU(pre) * (pre > threshold), with
    threshold an EMA of the smallest positive activation kept in training."""

    config_fields = TopKSAE.config_fields + ("threshold_decay",)
    bf16_select_ok = False  # the learned inference threshold must come from exact activations

    @classmethod
    def configure(cls, cfg: SAEConfig) -> None:
        super().configure(cfg)
        if not 0 <= cfg.threshold_decay < 1:
            raise ValueError(f"threshold_decay={cfg.threshold_decay} must be in [0, 1), e.g. 0.999")

    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__(cfg)
        # One value broadcast to every latent, stored per latent as SAELens' JumpReLU reads it.
        # 0 means "not estimated yet": inference is plain ReLU until the first training batch.
        self.register_buffer("threshold", torch.zeros(cfg.d_sae))

    def select(self, pre: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if not self.training:
            return self._select_above_threshold(pre)
        batch, d_sae = pre.shape
        vals, flat = pre.relu().flatten().topk(self.cfg.k * batch, sorted=False)
        flat, order = flat.sort()  # group the entries by sample, as embedding_bag reads them
        rows = torch.div(flat, d_sae, rounding_mode="floor")
        offsets = torch.searchsorted(rows, torch.arange(batch, device=pre.device))
        return flat % d_sae, vals[order], offsets

    def _select_above_threshold(self, pre: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        active = (pre > self.threshold) & (pre > 0)
        rows, idx = active.nonzero(as_tuple=True)  # row-major, so already grouped by sample
        offsets = torch.searchsorted(rows, torch.arange(pre.shape[0], device=pre.device))
        return idx, pre[rows, idx], offsets

    def encode(self, x: Tensor) -> Tensor:
        pre = self.encode_pre(x)
        return pre.relu() * (pre > self.threshold)

    def forward(self, x: Tensor) -> SAEOutput:
        out = super().forward(x)
        if self.training:
            self._update_threshold(out.vals)
        return out

    @torch.no_grad()
    def _update_threshold(self, vals: Tensor) -> None:
        # Stays on the device (no host sync): a batch with no positive activation changes nothing.
        smallest = vals.masked_fill(vals <= 0, float("inf")).min()
        decay = self.cfg.threshold_decay
        ema = decay * self.threshold + (1 - decay) * smallest
        ema = torch.where(self.threshold > 0, ema, smallest)
        self.threshold.copy_(torch.where(torch.isfinite(smallest), ema, self.threshold))

    def saelens_tensors(self) -> dict[str, Tensor]:
        return {**super().saelens_tensors(), "threshold": self.threshold}
