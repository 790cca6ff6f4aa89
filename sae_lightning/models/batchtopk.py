"""BatchTopK SAE (Bussmann et al. 2024): the k*B largest latents of the whole batch fire, so
inputs share a sparsity budget; inference, which has no batch, uses a threshold learned along."""

from __future__ import annotations

import torch
from torch import Tensor

from ..schemas.sae import BatchTopKConfig
from .output import SAEOutput
from .topk import TopKSAE


class BatchTopKSAE(TopKSAE, architecture="batchtopk"):
    """Training: z = BatchTopK_{k*B}(ReLU(pre)). Eval: z = ReLU(pre) * (pre > threshold), with
    threshold a bias-corrected EMA of the smallest positive activation kept in training: SAELens'
    JumpReLU with that threshold computes the same encode."""

    config_class = BatchTopKConfig
    config_fields = TopKSAE.config_fields + ("threshold_decay",)
    saelens_architecture = "jumprelu"
    bf16_select_ok = False  # the learned inference threshold must come from exact activations

    def __init__(self, cfg: BatchTopKConfig) -> None:
        super().__init__(cfg)
        # One value broadcast to every latent, stored per latent as SAELens' JumpReLU reads it.
        # 0 means "not estimated yet": inference is plain ReLU until the first training batch.
        self.register_buffer("threshold", torch.zeros(cfg.d_sae))
        # EMA state: m = sum of decay^age * (1 - decay) * batch minimum, w = the same sum of weights
        # (1 - decay^n). threshold = m / w weighs only recent batches, where a plain EMA started at
        # step 0 would keep decay^n of its weight on the untrained first batch (57 % after 570
        # steps at 0.999).
        self.register_buffer("threshold_ema", torch.zeros(()))
        self.register_buffer("threshold_ema_weight", torch.zeros(()))

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
        seen = torch.isfinite(smallest)
        decay = torch.where(seen, torch.tensor(self.cfg.threshold_decay, device=vals.device), 1.0)
        self.threshold_ema.mul_(decay).add_((1 - decay) * torch.where(seen, smallest, 0.0))
        self.threshold_ema_weight.mul_(decay).add_(1 - decay)
        estimate = self.threshold_ema / self.threshold_ema_weight.clamp_min(1e-12)
        self.threshold.copy_(torch.where(self.threshold_ema_weight > 0, estimate, 0.0).expand_as(self.threshold))

    def saelens_tensors(self) -> dict[str, Tensor]:
        return {**super().saelens_tensors(), "threshold": self.threshold}
