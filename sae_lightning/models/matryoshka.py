"""Matryoshka SAE (Bussmann et al. 2025; Nabeshima 2024): every prefix of the dictionary must
reconstruct the input on its own, so early latents learn general features and later ones refine
them, instead of general features being split up as the dictionary grows."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .base import SAEConfig, SAEOutput
from .batchtopk import BatchTopKSAE
from .topk import TopKSAE, fvu

BASES = ("topk", "batchtopk")


class MatryoshkaSAE(TopKSAE, architecture="matryoshka"):
    """Latents from a TopK or BatchTopK base (cfg.matryoshka_base);
    L = mean over prefixes m of fvu(x, decode(z[:, :m])) + aux_coefficient * AuxK.

    MatryoshkaSAE(cfg) with a batchtopk base returns a MatryoshkaBatchTopKSAE, which takes the
    batch-level selection and the inference threshold from BatchTopKSAE.
    """

    config_fields = TopKSAE.config_fields + ("matryoshka_prefixes", "matryoshka_base")

    def __new__(cls, cfg: SAEConfig | None = None, *args: Any, **kwargs: Any) -> MatryoshkaSAE:
        # cfg is None when copy/pickle rebuild an instance: its class is already the right one.
        if cls is MatryoshkaSAE and cfg is not None and cfg.matryoshka_base == "batchtopk":
            return super().__new__(MatryoshkaBatchTopKSAE)
        return super().__new__(cls)

    @classmethod
    def configure(cls, cfg: SAEConfig) -> None:
        super().configure(cfg)
        if cfg.matryoshka_base not in BASES:
            raise ValueError(
                f"matryoshka_base={cfg.matryoshka_base!r} must be one of {', '.join(BASES)}"
            )
        if cfg.matryoshka_prefixes is None:
            cfg.matryoshka_prefixes = sorted({cfg.d_sae // 2**i for i in range(5)} - {0})
        prefixes = cfg.matryoshka_prefixes
        increasing = all(a < b for a, b in zip([0] + prefixes, prefixes))
        if not prefixes or not increasing or prefixes[-1] != cfg.d_sae:
            raise ValueError(
                f"matryoshka_prefixes={prefixes} must be positive, strictly increasing and end at "
                f"d_sae={cfg.d_sae}; e.g. {sorted({cfg.d_sae // 4, cfg.d_sae // 2, cfg.d_sae})}"
            )

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
