"""What every SAE variant shares: the encoder/decoder algebra, decoder-norm handling and
initialisation; the settings (SAEConfig and each variant's config) are schemas/sae.py. A variant
only says how pre-activations become latents (`activate`) and what it minimises (`loss_terms`).
Files: saelens_files.py; the output container: output.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..schemas.sae import SAEConfig
from . import saelens_files
from .output import SAEOutput
from .registry import ARCHITECTURES, variant_class
from .training import geometric_median


class SparseAutoencoder(nn.Module):
    """pre = (x - b_dec) @ W_enc + b_enc,  z = activate(pre),  x_hat = z @ W_dec + b_dec.

    Parameters use the SAELens orientation: W_enc [d_in, d_sae], W_dec [d_sae, d_in]. Inputs are
    2-D [batch, d_in]; any float dtype is accepted and computed in float32.
    """

    architecture: ClassVar[str]
    config_class: ClassVar[type[SAEConfig]] = SAEConfig
    # The SAELens inference class whose encode equals ours at inference (see saelens_files)
    saelens_architecture: ClassVar[str]
    # Config fields this variant uses, written to cfg.json beside the SAELens keys, in this order
    config_fields: ClassVar[tuple[str, ...]] = ("dead_after_samples",)

    def __init_subclass__(cls, architecture: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if architecture is not None:
            cls.architecture = architecture
            ARCHITECTURES[architecture] = cls

    @classmethod
    def class_for(cls, cfg: SAEConfig) -> type[SparseAutoencoder]:
        """The class that runs `cfg` (build_sae asks): this one, unless a setting picks a subclass."""
        return cls

    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__()
        expected = variant_class(cfg.architecture).class_for(cfg)
        if not isinstance(self, expected):
            raise ValueError(
                f"{type(self).__name__} cannot run this {cfg.architecture!r} config ({expected.__name__} does); "
                "build it with build_sae(cfg)"
            )
        self.cfg = cfg
        # Unit-norm random decoder rows and a tied encoder start every latent as a matched filter
        # of its own direction (Gao et al. 2024), which keeps early dead latents rare.
        W_dec = F.normalize(torch.randn(cfg.d_sae, cfg.d_in), dim=1)
        self.W_enc = nn.Parameter(W_dec.T.clone())
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae))
        self.W_dec = nn.Parameter(W_dec)
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in))

    # ---- forward -------------------------------------------------------------------------------

    def encode_pre(self, x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        """Pre-activations, computed in `dtype` when given (TopK's bf16 selection), else in the weights'."""
        x = x.to(dtype or self.W_enc.dtype)  # the store may hand float16 embeddings
        if x.ndim != 2:
            return (x - self.b_dec) @ self.W_enc + self.b_enc
        # The same (x - b_dec) W_enc + b_enc, with b_dec folded into the bias: b_dec's gradient is
        # then a vector-matrix product, where the other form makes backward multiply the whole
        # [B, d_sae] gradient by W_encᵀ (a matmul as large as the forward) to get it.
        bias = self.b_enc - self.b_dec @ self.W_enc
        return torch.addmm(bias.to(x.dtype), x, self.W_enc.to(x.dtype))

    def activate(self, pre: Tensor) -> Tensor:
        """Dense latents from pre-activations, by the variant's rule for the current mode."""
        raise NotImplementedError

    def encode(self, x: Tensor) -> Tensor:
        """Dense latents [B, d_sae] as used at inference."""
        return self.activate(self.encode_pre(x))

    def decode(self, z: Tensor) -> Tensor:
        return z.to(self.W_dec.dtype) @ self.W_dec + self.b_dec

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> SAEOutput:
        """`decode(encode(x))` with its pre-activations and latents, without a graph: what validation
        measures. Sparse variants decode from the active latents alone."""
        return SparseAutoencoder.forward(self, x)

    def forward(self, x: Tensor) -> SAEOutput:
        pre = self.encode_pre(x)
        z = self.activate(pre)
        return SAEOutput(x_hat=self.decode(z), pre=pre, latents=z)

    def loss_terms(
        self, x: Tensor, out: SAEOutput, *, step: int = 0, dead_mask: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Named scalar terms of this variant's objective plus their weighted total under "loss".

        step drives coefficient warm-ups; dead_mask [d_sae] (bool) marks dead latents for AuxK.
        """
        raise NotImplementedError

    # ---- decoder geometry ------------------------------------------------------------------

    @torch.no_grad()
    def set_decoder_norm_to_unit_norm(self) -> Tensor:
        """Call after each optimiser step: without it the sparsity penalty is cheated by shrinking
        z and growing the decoder rows. Returns the rows' norms before (non-finite where a row was)."""
        norms = torch.linalg.vector_norm(self.W_dec, dim=1, keepdim=True)
        self.W_dec.div_(norms.clamp_min(1e-8))
        return norms

    @torch.no_grad()
    def remove_gradient_parallel_to_decoder_directions(self) -> None:
        """Call before each optimiser step: the radial part of the gradient would only be undone by
        the renormalisation, and it disturbs Adam's moment estimates."""
        grad, W = self.W_dec.grad, self.W_dec
        if grad is None:
            return
        # g -= (<g, w> / <w, w>) w per row. The row dot products as one batched matmul and the
        # update in place: no [d_sae, d_in] temporaries, ~4x faster than normalize-mul-sum on CPU.
        dots = torch.bmm(grad.unsqueeze(1), W.unsqueeze(2)).view(-1, 1)
        grad.addcmul_(
            W, dots.div_(torch.linalg.vector_norm(W, dim=1, keepdim=True).square_().clamp_min_(1e-16)), value=-1
        )

    @torch.no_grad()
    def init_b_dec(self, sample: Tensor, method: str = "geometric_median") -> None:
        """Centre the SAE on the data so that the latents spend no capacity on the offset."""
        if sample.ndim != 2 or sample.shape[1] != self.cfg.d_in:
            raise ValueError(f"sample must be [N, d_in={self.cfg.d_in}], got {tuple(sample.shape)}")
        if method == "geometric_median":
            centre = geometric_median(sample.to(self.b_dec.device))
        elif method == "mean":
            centre = sample.to(self.b_dec.device).float().mean(0)
        else:
            raise ValueError(f"unknown b_dec init {method!r}; use 'geometric_median' or 'mean'")
        self.b_dec.copy_(centre)

    # ---- the SAELens folder (saelens_files.py): which tensors, under which names ----------------

    def saelens_tensors(self) -> dict[str, Tensor]:
        """The tensors of sae_weights.safetensors, by SAELens name."""
        return {"W_enc": self.W_enc, "b_enc": self.b_enc, "W_dec": self.W_dec, "b_dec": self.b_dec}

    def _assign(self, name: str, value: Tensor) -> None:
        getattr(self, name).copy_(value)

    def load_saelens_tensors(self, tensors: dict[str, Tensor], source: str = "tensors") -> None:
        saelens_files.assign_tensors(self, tensors, source)

    def saelens_cfg(self) -> dict[str, Any]:
        return saelens_files.cfg_json_of(self)

    def save(self, folder: str | Path) -> Path:
        """Write cfg.json and sae_weights.safetensors, a folder SAELens' `SAE.load_from_disk` loads."""
        return saelens_files.save_sae(self, Path(folder))

    def save_sparsity(self, folder: str | Path, log10_density: Tensor) -> Path:
        """Write sparsity.safetensors: log10 firing frequency per latent, under key "sparsity"."""
        return saelens_files.save_sparsity(Path(folder), log10_density, self.cfg.d_sae)

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> SparseAutoencoder:
        """Read a folder written by `save`; returns the variant class named in cfg.json."""
        return saelens_files.load_sae(Path(folder), cls, device)
