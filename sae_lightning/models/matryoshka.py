"""Matryoshka SAE (Bussmann et al. 2025; Nabeshima 2024): every prefix of the dictionary must
reconstruct the input on its own, so early latents learn general features and later ones refine
them, instead of general features being split up as the dictionary grows."""

from __future__ import annotations

import torch
from torch import Tensor

from ..schemas.sae import MatryoshkaConfig
from .batchtopk import BatchTopKSAE
from .output import SAEOutput
from .topk import TopKSAE, fvu


class MatryoshkaSAE(TopKSAE, architecture="matryoshka"):
    """Latents from a TopK or BatchTopK base (cfg.matryoshka_base);
    L = mean over prefixes m of fvu(x, decode(z[:, :m])) + aux_coefficient * AuxK.

    With a batchtopk base, build_sae(cfg) gives a MatryoshkaBatchTopKSAE (`class_for`), which takes
    the batch-level selection and the inference threshold from BatchTopKSAE.
    """

    config_class = MatryoshkaConfig
    config_fields = TopKSAE.config_fields + ("matryoshka_prefixes", "matryoshka_base")

    @classmethod
    def class_for(cls, cfg: MatryoshkaConfig) -> type[MatryoshkaSAE]:
        return MatryoshkaBatchTopKSAE if cfg.matryoshka_base == "batchtopk" else MatryoshkaSAE

    def loss_terms(
        self, x: Tensor, out: SAEOutput, *, step: int = 0, dead_mask: Tensor | None = None
    ) -> dict[str, Tensor]:
        x = x.to(out.x_hat.dtype)
        full = fvu(out.x_hat, x)
        # A prefix keeps the entries of the shared sparse code whose latent index is below m.
        prefix_fvus = [
            fvu(self.decode_sparse(out.idx, out.vals * (out.idx < m), out.offsets), x)
            for m in self.cfg.matryoshka_prefixes[:-1]
        ]
        prefix_fvu = torch.stack(prefix_fvus + [full]).mean()
        auxk = self.auxk_loss(x, out, dead_mask)
        return {
            "loss": prefix_fvu + self.cfg.aux_coefficient * auxk,
            "prefix_fvu": prefix_fvu,
            "fvu": full,
            "auxk": auxk,
        }


class MatryoshkaBatchTopKSAE(MatryoshkaSAE, BatchTopKSAE):
    config_fields = MatryoshkaSAE.config_fields + ("threshold_decay",)
    saelens_architecture = "jumprelu"  # inference is its base's: the learned threshold
