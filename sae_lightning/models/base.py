"""What every SAE variant shares: its config, its output, the encoder/decoder algebra, decoder-norm
handling, initialisation, and save/load in the SAELens folder layout. A variant only says how
pre-activations become latents (`activate`) and what it minimises (`loss_terms`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor, nn

from .saelens_files import (
    CFG_FILE,
    REWRITE_HINT,
    SPARSITY_FILE,
    WEIGHTS_FILE,
    SAEFileError,
    read_own_config,
    read_safetensors,
    saelens_cfg_json,
    write_sae_folder,
)

# Filled by SparseAutoencoder.__init_subclass__; importing the package registers every variant.
ARCHITECTURES: dict[str, type[SparseAutoencoder]] = {}

_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


@dataclass
class SAEConfig:
    """Architecture and loss hyper-parameters. Each variant reads only its own fields and writes
    only those to cfg.json (see `SparseAutoencoder.config_fields`)."""

    architecture: str
    d_in: int
    # Defaults equal conf/sae/ (tests/test_defaults.py): a config built in Python trains as the CLI does.
    d_sae: int = 3072
    k: int | None = 32  # active latents per input: topk, batchtopk (on average), matryoshka
    # Defaults suit unit-norm sentence embeddings (pre-activations ~0.04 at init).
    # relu: L1 weight; jumprelu reuses the warm-up for its L0 weight
    l1_coefficient: float = 0.05
    l1_warmup_steps: int = 1000
    # topk family: AuxK (Gao et al. 2024, App. A.2); None means d_in // 2, their k_aux
    aux_k: int | None = None
    aux_coefficient: float = 1 / 32
    # topk, CPU training: dtype of the matmul that picks the k active latents. bfloat16 pays off on
    # CPUs with AMX at large batches (benchmarks/); the activations themselves are always float32.
    select_dtype: str = "float32"
    # A latent is dead when it did not fire on the last N training samples. The trainer counts;
    # it lives here so that the SAE files say how "dead" was measured.
    dead_after_samples: int = 10_000
    # batchtopk: decay of the bias-corrected EMA of the inference threshold
    threshold_decay: float = 0.99
    # jumprelu (Rajamanoharan et al. 2024)
    initial_threshold: float = 0.02
    bandwidth: float = 0.01
    l0_coefficient: float = 1e-3
    # matryoshka: nested prefix sizes (None means d_sae/16, /8, /4, /2, d_sae) over a topk base
    matryoshka_prefixes: list[int] | None = None
    matryoshka_base: str = "batchtopk"
    dtype: str = "float32"  # dtype of the saved weights; the math is always float32
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Hydra hands over ListConfig/DictConfig; plain containers keep cfg.json serialisable.
        self.metadata = {"model_name": None, **dict(self.metadata)}
        if self.matryoshka_prefixes is not None:
            self.matryoshka_prefixes = [int(m) for m in self.matryoshka_prefixes]
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"unknown architecture {self.architecture!r}; "
                f"known architectures: {', '.join(sorted(ARCHITECTURES))}"
            )
        if self.d_in <= 0:
            raise ValueError(f"d_in={self.d_in} must be positive; set it to the embedding width")
        if self.d_sae <= 0:
            raise ValueError(
                f"d_sae={self.d_sae} must be positive; set it to the dictionary size "
                f"(e.g. 8 * d_in = {8 * self.d_in})"
            )
        if self.select_dtype not in ("float32", "bfloat16"):
            raise ValueError(f"select_dtype={self.select_dtype!r} must be float32 or bfloat16")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype={self.dtype!r} is not one of {', '.join(_DTYPES)}")
        if self.aux_k is None:
            self.aux_k = max(1, self.d_in // 2)
        ARCHITECTURES[self.architecture].configure(self)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SAEConfig:
        """Build from a dict that may carry extra keys (cfg.json written by SAELens or by us)."""
        names = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in raw.items() if key in names})


@dataclass(eq=False)
class SAEOutput:
    """One forward pass. Sparse variants fill idx/vals/offsets (the active latents, grouped per
    sample as `F.embedding_bag` reads them) and build the dense `z` only when it is asked for."""

    x_hat: Tensor  # [B, d_in]
    pre: Tensor  # [B, d_sae] pre-activations: AuxK and diagnostics read them
    latents: Tensor | None = None  # dense z [B, d_sae], when the variant computes it anyway
    idx: Tensor | None = None  # [nnz] latent index of each active entry
    vals: Tensor | None = None  # [nnz] its activation
    offsets: Tensor | None = None  # [B] where each sample's entries start in idx/vals

    @property
    def z(self) -> Tensor:
        if self.latents is None:
            self.latents = densify(self.idx, self.vals, self.offsets, self.pre.shape[-1])
        return self.latents

    @property
    def fire_counts(self) -> Tensor:
        """[d_sae] how many samples of the batch each latent fired on (dead/density statistics)."""
        if self.latents is None and self.idx is not None:
            fired = (self.vals > 0).long()
            return torch.zeros_like(self.pre[0], dtype=torch.long).index_add_(0, self.idx, fired)
        return (self.z > 0).sum(0)

    @property
    def l0(self) -> Tensor:
        """Mean number of active latents per input."""
        if self.latents is None and self.idx is not None:
            return (self.vals > 0).sum() / self.pre.shape[0]
        return (self.z > 0).sum(-1).float().mean()


def densify(idx: Tensor, vals: Tensor, offsets: Tensor, d_sae: int) -> Tensor:
    """Scatter the sparse (idx, vals, offsets) form into a dense [B, d_sae] tensor."""
    counts = torch.diff(offsets, append=offsets.new_tensor([idx.numel()]))
    rows = torch.repeat_interleave(
        torch.arange(offsets.numel(), device=idx.device), counts, output_size=idx.numel()
    )
    return vals.new_zeros(offsets.numel(), d_sae).index_put((rows, idx), vals)


def warmed_up(coefficient: float, step: int, warmup_steps: int) -> float:
    """Linear warm-up from 0, so that early steps learn to reconstruct before they sparsify."""
    if warmup_steps <= 0:
        return coefficient
    return coefficient * min(1.0, step / warmup_steps)


@torch.no_grad()
def geometric_median(points: Tensor, max_iter: int = 100, tol: float = 1e-6) -> Tensor:
    """Weiszfeld's algorithm: a mean re-weighted by 1/distance until it stops moving. Unlike the
    mean, a few far-off points cannot drag it away."""
    points = points.float()
    median = points.mean(0)
    for _ in range(max_iter):
        weights = 1 / torch.linalg.vector_norm(points - median, dim=1).clamp_min(1e-8)
        new = weights @ points / weights.sum()
        shift = torch.linalg.vector_norm(new - median)
        median = new
        if shift <= tol * torch.linalg.vector_norm(median).clamp_min(1.0):
            break
    return median


class SparseAutoencoder(nn.Module):
    """pre = (x - b_dec) @ W_enc + b_enc,  z = activate(pre),  x_hat = z @ W_dec + b_dec.

    Parameters use the SAELens orientation: W_enc [d_in, d_sae], W_dec [d_sae, d_in]. Inputs are
    2-D [batch, d_in]; any float dtype is accepted and computed in float32.
    """

    architecture: ClassVar[str]
    # The SAELens inference class whose encode equals ours at inference (see saelens_files)
    saelens_architecture: ClassVar[str]
    # SAEConfig fields this variant uses, written to cfg.json beside the SAELens keys
    config_fields: ClassVar[tuple[str, ...]] = ("dead_after_samples",)

    def __init_subclass__(cls, architecture: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if architecture is not None:
            cls.architecture = architecture
            ARCHITECTURES[architecture] = cls

    @classmethod
    def configure(cls, cfg: SAEConfig) -> None:
        """Fill this variant's derived defaults in cfg; reject bad values in one-line errors."""

    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__()
        if cfg.architecture != self.architecture:
            raise ValueError(
                f"{type(self).__name__} is the {self.architecture!r} SAE but cfg.architecture is "
                f"{cfg.architecture!r}; build it with build_sae(cfg)"
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
    def set_decoder_norm_to_unit_norm(self) -> None:
        """Call after each optimiser step: without it the sparsity penalty is cheated by shrinking
        z and growing the decoder rows."""
        self.W_dec.div_(torch.linalg.vector_norm(self.W_dec, dim=1, keepdim=True).clamp_min(1e-8))

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
        grad.addcmul_(W, dots.div_(torch.linalg.vector_norm(W, dim=1, keepdim=True).square_().clamp_min_(1e-16)),
                      value=-1)

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

    # ---- SAELens folder layout -------------------------------------------------------------

    def saelens_tensors(self) -> dict[str, Tensor]:
        """The tensors of sae_weights.safetensors, by SAELens name."""
        return {"W_enc": self.W_enc, "b_enc": self.b_enc, "W_dec": self.W_dec, "b_dec": self.b_dec}

    def _assign(self, name: str, value: Tensor) -> None:
        getattr(self, name).copy_(value)

    @torch.no_grad()
    def load_saelens_tensors(self, tensors: dict[str, Tensor], source: str = "tensors") -> None:
        for name, ref in self.saelens_tensors().items():
            if name not in tensors:
                raise SAEFileError(
                    f"{source}: no tensor {name!r}; the file is not a {self.architecture} SAE"
                )
            if tensors[name].shape != ref.shape:
                raise SAEFileError(
                    f"{source}: {name} has shape {tuple(tensors[name].shape)}, expected "
                    f"{tuple(ref.shape)} from cfg.json"
                )
            self._assign(name, tensors[name].to(ref.device, ref.dtype))

    def saelens_cfg(self) -> dict[str, Any]:
        """cfg.json: the SAELens inference architecture that computes our encode, and our own
        config (architecture under our name, the variant's fields) in a block SAELens ignores."""
        cfg = self.cfg
        shape = {"d_in": cfg.d_in, "d_sae": cfg.d_sae, "dtype": cfg.dtype}
        saelens = {"architecture": self.saelens_architecture, **shape}
        if self.saelens_architecture == "topk":
            saelens["k"] = cfg.k
        own = {"architecture": cfg.architecture, **shape}
        own.update({name: getattr(cfg, name) for name in self.config_fields})
        return saelens_cfg_json(saelens, own, dict(cfg.metadata))

    def save(self, folder: str | Path) -> Path:
        """Write cfg.json and sae_weights.safetensors, a folder SAELens' `SAE.load_from_disk` loads."""
        dtype = _DTYPES[self.cfg.dtype]
        tensors = {name: t.detach().to("cpu", dtype).contiguous() for name, t in self.saelens_tensors().items()}
        return write_sae_folder(Path(folder), self.saelens_cfg(), tensors)

    def save_sparsity(self, folder: str | Path, log10_density: Tensor) -> Path:
        """Write sparsity.safetensors: log10 firing frequency per latent, under key "sparsity"."""
        if log10_density.shape != (self.cfg.d_sae,):
            raise ValueError(
                f"log10_density must be [d_sae={self.cfg.d_sae}], got {tuple(log10_density.shape)}"
            )
        path = Path(folder) / SPARSITY_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        sparsity = log10_density.detach().to("cpu", torch.float32).contiguous()
        save_file({"sparsity": sparsity}, str(path))
        return path

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> SparseAutoencoder:
        """Read a folder written by `save`; returns the variant class named in cfg.json."""
        folder = Path(folder)
        cfg_path = folder / CFG_FILE
        raw = read_own_config(folder)
        architecture = raw.get("architecture")
        if architecture not in ARCHITECTURES:
            raise SAEFileError(
                f"{cfg_path}: unknown architecture {architecture!r}; "
                f"known architectures: {', '.join(sorted(ARCHITECTURES))}"
            )
        try:
            cfg = SAEConfig.from_dict(raw)
        except (TypeError, ValueError) as err:
            raise SAEFileError(f"{cfg_path}: {err}; {REWRITE_HINT}") from None
        variant = ARCHITECTURES[architecture]
        if not issubclass(variant, cls):
            raise SAEFileError(
                f"{cfg_path}: holds a {architecture!r} SAE, not {cls.__name__}; "
                "use SparseAutoencoder.load"
            )
        # Random init would be overwritten anyway; do not let loading move the caller's RNG.
        with torch.random.fork_rng(devices=[]):
            sae = variant(cfg)
        weights_path = folder / WEIGHTS_FILE
        sae.load_saelens_tensors(read_safetensors(weights_path), source=str(weights_path))
        return sae.to(device)


def build_sae(cfg: SAEConfig) -> SparseAutoencoder:
    return ARCHITECTURES[cfg.architecture](cfg)
