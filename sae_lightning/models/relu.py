"""ReLU SAE with a decoder-norm-weighted L1 penalty (Anthropic, "Towards Monosemanticity" and its
April 2024 update)."""

from __future__ import annotations

from torch import Tensor

from ..schemas.sae import ReLUConfig
from .base import SparseAutoencoder
from .output import SAEOutput
from .training import warmed_up


class ReLUSAE(SparseAutoencoder, architecture="relu"):
    """z = ReLU(pre);  L = ||x - x_hat||^2 + lambda(step) * sum_i z_i ||W_dec,i||."""

    config_class = ReLUConfig
    config_fields = ("l1_coefficient", "l1_warmup_steps", "dead_after_samples")
    saelens_architecture = "standard"  # SAELens' plain ReLU SAE

    def activate(self, pre: Tensor) -> Tensor:
        return pre.relu()

    def loss_terms(
        self, x: Tensor, out: SAEOutput, *, step: int = 0, dead_mask: Tensor | None = None
    ) -> dict[str, Tensor]:
        x = x.to(out.x_hat.dtype)
        mse = (out.x_hat - x).pow(2).sum(-1).mean()
        # Weighting by the row norm keeps the penalty honest if the decoder is not renormalised.
        l1 = (out.z * self.W_dec.norm(dim=1)).sum(-1).mean()
        l1_coefficient = warmed_up(self.cfg.l1_coefficient, step, self.cfg.l1_warmup_steps)
        return {"loss": mse + l1_coefficient * l1, "mse": mse, "l1": l1}
