"""Matryoshka SAE (Bussmann et al. 2025; Nabeshima 2024): every prefix of the dictionary must
reconstruct the input on its own, so early latents learn general features and later ones refine
them, instead of general features being split up as the dictionary grows."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .batchtopk import BatchTopKSAE, check_threshold_decay
from .output import SAEOutput
from .topk import TopKConfig, TopKSAE, fvu

BASES = ("topk", "batchtopk")


@dataclass
class MatryoshkaConfig(TopKConfig):
    """conf/sae/matryoshka.yaml: the base's settings plus the nested prefix sizes."""

    # nested prefix sizes (None means d_sae/16, /8, /4, /2, d_sae)
    matryoshka_prefixes: list[int] | None = None
    matryoshka_base: str = "batchtopk"  # topk | batchtopk: the activation of the whole dictionary
    threshold_decay: float = 0.99  # batchtopk base: as BatchTopKConfig.threshold_decay

    def __post_init__(self) -> None:
        if self.matryoshka_prefixes is not None:  # Hydra hands a ListConfig
            self.matryoshka_prefixes = [int(m) for m in self.matryoshka_prefixes]
        super().__post_init__()
        if self.matryoshka_base not in BASES:
            raise ValueError(f"matryoshka_base={self.matryoshka_base!r} must be one of {', '.join(BASES)}")
        check_threshold_decay(self.threshold_decay)
        if self.matryoshka_prefixes is None:
            self.matryoshka_prefixes = sorted({self.d_sae // 2**i for i in range(5)} - {0})
        prefixes = self.matryoshka_prefixes
        increasing = all(a < b for a, b in zip([0] + prefixes, prefixes))
        if not prefixes or not increasing or prefixes[-1] != self.d_sae:
            raise ValueError(
                f"matryoshka_prefixes={prefixes} must be positive, strictly increasing and end at "
                f"d_sae={self.d_sae}; e.g. {sorted({self.d_sae // 4, self.d_sae // 2, self.d_sae})}"
            )


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
