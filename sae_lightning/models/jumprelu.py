"""JumpReLU SAE (Rajamanoharan et al. 2024, "Jumping Ahead"): each latent has its own threshold,
trained through a straight-through estimator, and sparsity is an L0 penalty. Follows SAELens."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..schemas.sae import JumpReLUConfig
from .base import SparseAutoencoder
from .output import SAEOutput
from .training import warmed_up


def _rectangle(x: Tensor) -> Tensor:
    return ((x > -0.5) & (x < 0.5)).to(x.dtype)


def _sum_to(grad: Tensor, like: Tensor) -> Tensor:
    return grad.reshape(-1, like.shape[-1]).sum(0)


class _JumpReLU(torch.autograd.Function):
    """pre * H(pre - theta). The step has no useful gradient in theta; the pseudo-derivative is a
    rectangle kernel of width `bandwidth` around the threshold."""

    @staticmethod
    def forward(ctx, pre: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return pre * (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, None]:
        pre, threshold = ctx.saved_tensors
        bandwidth = ctx.bandwidth
        grad_pre = grad * (pre > threshold).to(grad.dtype)
        grad_threshold = -(threshold / bandwidth) * _rectangle((pre - threshold) / bandwidth) * grad
        return grad_pre, _sum_to(grad_threshold, threshold), None


class _Step(torch.autograd.Function):
    """H(pre - theta), for the L0 count; gradient to theta only, as in the paper."""

    @staticmethod
    def forward(ctx, pre: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[None, Tensor, None]:
        pre, threshold = ctx.saved_tensors
        bandwidth = ctx.bandwidth
        grad_threshold = -(1.0 / bandwidth) * _rectangle((pre - threshold) / bandwidth) * grad
        return None, _sum_to(grad_threshold, threshold), None


class JumpReLUSAE(SparseAutoencoder, architecture="jumprelu"):
    """z = pre * H(pre - theta), theta = exp(log_threshold);
    L = ||x - x_hat||^2 + lambda(step) * sum_i H(pre_i - theta_i)."""

    config_class = JumpReLUConfig
    config_fields = (
        "initial_threshold",
        "bandwidth",
        "l0_coefficient",
        "l1_warmup_steps",
        "dead_after_samples",
    )
    saelens_architecture = "jumprelu"

    def __init__(self, cfg: JumpReLUConfig) -> None:
        super().__init__(cfg)
        # Learning log(theta) keeps theta positive and its steps relative to its size.
        self.log_threshold = nn.Parameter(torch.full((cfg.d_sae,), math.log(cfg.initial_threshold)))

    @property
    def threshold(self) -> Tensor:
        return self.log_threshold.exp()

    def activate(self, pre: Tensor) -> Tensor:
        return _JumpReLU.apply(pre, self.threshold, self.cfg.bandwidth)

    def loss_terms(
        self, x: Tensor, out: SAEOutput, *, step: int = 0, dead_mask: Tensor | None = None
    ) -> dict[str, Tensor]:
        x = x.to(out.x_hat.dtype)
        mse = (out.x_hat - x).pow(2).sum(-1).mean()
        l0 = _Step.apply(out.pre, self.threshold, self.cfg.bandwidth).sum(-1).mean()
        l0_coefficient = warmed_up(self.cfg.l0_coefficient, step, self.cfg.l1_warmup_steps)
        return {"loss": mse + l0_coefficient * l0, "mse": mse, "l0": l0}

    def saelens_tensors(self) -> dict[str, Tensor]:
        return {**super().saelens_tensors(), "threshold": self.threshold}

    def _assign(self, name: str, value: Tensor) -> None:
        if name == "threshold":
            # log in float64 so that exp(log(theta)) gives back the saved float32 theta
            self.log_threshold.copy_(value.double().log())
        else:
            super()._assign(name, value)
