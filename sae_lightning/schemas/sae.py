"""The `sae` group: one config class per variant (SAELens' config-and-class pair: models/<variant>.py
holds the class, whose `config_class` is the one here). Each field states its default, type, meaning
and range once; conf/sae/<variant>.yaml is a preset on top of the schema registered for it. The
classes are here, not beside the models, because the commands check a config before torch loads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, ClassVar

from ..errors import UserError
from .knobs import POSITIVE, check_fields, knob, list_of, number, one_of, whole

# The SAE variants, by the name `sae=<name>` picks (their classes register under the same names).
ARCHITECTURE_NAMES = ("relu", "topk", "batchtopk", "jumprelu", "matryoshka")
WEIGHT_DTYPES = ("float32", "float64", "float16", "bfloat16")  # what the saved weights may be


def _filled(doc: str, rule) -> Any:
    """A field the code fills (the store's width): checked, but no knob of the group."""
    return field(metadata={"doc": doc, "rule": rule, "filled": True})


@dataclass
class SAEConfig:
    """The settings of every variant. Build one with `sae_config(architecture, d_in, ...)` or
    `SAEConfig.from_dict(raw)`, which both pick the variant's class."""

    architecture: str = knob(MISSING, "the SAE variant", one_of(*ARCHITECTURE_NAMES))
    d_in: int = _filled("embedding width (taken from the embedding store)", whole(1))
    d_sae: int = knob(3072, "dictionary size (8 x 384 for MiniLM)", POSITIVE)
    dead_after_samples: int = knob(
        10_000, "dead: not fired on this many training samples (counted in samples, not steps)", POSITIVE
    )
    dtype: str = "float32"  # not a knob: the dtype of the saved weights (the math is always float32)
    metadata: dict[str, Any] = field(default_factory=dict)
    # Trains with bf16/fp16 weights on a CPU (trainer.precision=bf16-true): dense matmuls only.
    cpu_half_weights: ClassVar[bool] = True

    def __post_init__(self) -> None:
        # Hydra hands over ListConfig/DictConfig; plain containers keep cfg.json serialisable.
        self.metadata = {"model_name": None, **dict(self.metadata)}
        expected = SAE_CONFIGS.get(self.architecture)
        if expected is not None and type(self) is not expected:
            raise UserError(
                f"a {self.architecture} SAE takes a {expected.__name__}, not {type(self).__name__}; "
                "build it with sae_config(architecture, d_in, ...)"
            )
        if self.dtype not in WEIGHT_DTYPES:
            raise UserError(f"dtype={self.dtype!r} is not one of {', '.join(WEIGHT_DTYPES)}")
        self.fill_derived()
        check_fields(self, "sae")
        problem = tied_problem(self.__dict__)
        if problem:
            raise UserError(problem)

    def fill_derived(self) -> None:
        """Values that follow from others when left unset (None)."""

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> SAEConfig:
        """Build from a dict that may carry extra keys (cfg.json written by SAELens or by us, the
        whole `sae` config group): the class named by raw["architecture"] keeps its own fields."""
        target = cls
        if cls is SAEConfig:
            if raw.get("architecture") not in SAE_CONFIGS:
                raise UserError(
                    f"unknown architecture {raw.get('architecture')!r}; known architectures: "
                    f"{', '.join(sorted(SAE_CONFIGS))}"
                )
            target = SAE_CONFIGS[raw["architecture"]]
        names = target.field_names()
        return target(**{key: value for key, value in raw.items() if key in names})


@dataclass
class TopKConfig(SAEConfig):
    """TopK (Gao et al. 2024): k active latents per input, AuxK revives dead ones."""

    cpu_half_weights: ClassVar[bool] = False  # its CPU training runs torch's sparse CSR products: float32/64 only

    # 16: the SAE study's pick for the built-in corpus (docs/application/choosing-an-sae.md)
    k: int = knob(16, "active latents per input (batchtopk: on average)", POSITIVE)
    aux_k: int | None = knob(
        None, "dead latents used by AuxK (null: d_in / 2, Gao et al.'s k_aux)", whole(1, null=True)
    )
    aux_coefficient: float = knob(1 / 32, "AuxK loss weight (1/32)", number(0))
    select_dtype: str = knob(
        "float32",
        "matmul that picks the k latents; bfloat16: for AMX CPUs at large batches (82k samples/s at "
        "4096), values stay float32",
        one_of("float32", "bfloat16"),
    )

    def fill_derived(self) -> None:
        if self.aux_k is None and isinstance(self.d_in, int):
            self.aux_k = max(1, self.d_in // 2)


@dataclass
class BatchTopKConfig(TopKConfig):
    """BatchTopK: top k*B over the whole batch while training, a learned threshold at inference."""

    threshold_decay: float = knob(
        0.99,
        "inference threshold = bias-corrected EMA of each batch's smallest kept activation (~last 100 "
        "steps); also matryoshka's with a batchtopk base",
        number(0, 1, lo_open=True, hi_open=True),
    )


@dataclass
class MatryoshkaConfig(BatchTopKConfig):
    """Matryoshka: nested prefixes of the dictionary each reconstruct the input on their own."""

    matryoshka_prefixes: list[int] | None = knob(
        None,
        "nested dictionary sizes, last = d_sae (null: d_sae/16, /8, /4, /2, d_sae)",
        list_of(
            POSITIVE,
            "an increasing list of dictionary sizes ending at sae.d_sae",
            check=lambda v: len(v) > 0 and all(a < b for a, b in zip(v, v[1:])),
            null=True,
        ),
    )
    matryoshka_base: str = knob("batchtopk", "the activation of the whole dictionary", one_of("topk", "batchtopk"))

    def fill_derived(self) -> None:
        super().fill_derived()
        if self.matryoshka_prefixes is None:
            self.matryoshka_prefixes = sorted({self.d_sae // 2**i for i in range(5)} - {0})
        else:  # Hydra hands a ListConfig
            self.matryoshka_prefixes = list(self.matryoshka_prefixes)


@dataclass
class PenaltyConfig(SAEConfig):
    """What the penalised variants share: a sparsity penalty whose weight warms up."""

    l1_warmup_steps: int = knob(1000, "the sparsity penalty's weight rises linearly from 0 over these steps", whole(0))


@dataclass
class ReLUConfig(PenaltyConfig):
    """ReLU with L1 on activations weighted by decoder norms (Anthropic, April 2024 update)."""

    l1_coefficient: float = knob(0.05, "sparsity weight lambda (0.1 already cuts L0 to ~85 on MiniLM)", number(0))


@dataclass
class JumpReLUConfig(PenaltyConfig):
    """JumpReLU (Rajamanoharan et al. 2024): per-latent thresholds learned with a straight-through
    estimator, an L0 penalty."""

    initial_threshold: float = knob(
        0.02, "starting theta for every latent (0.001 barely moves in 800 steps)", number(0, lo_open=True)
    )
    bandwidth: float = knob(
        0.01, "width of the rectangle kernel of the straight-through estimator", number(0, lo_open=True)
    )
    l0_coefficient: float = knob(0.001, "weight of the L0 penalty", number(0))


SAE_CONFIGS: dict[str, type[SAEConfig]] = dict(
    zip(ARCHITECTURE_NAMES, (ReLUConfig, TopKConfig, BatchTopKConfig, JumpReLUConfig, MatryoshkaConfig))
)


def tied_problem(sae: Mapping[str, Any]) -> str | None:
    """The rules over two knobs of the group, each checked where both are set (the composed config
    and a config built in Python are checked by this same function)."""
    k, d_sae, prefixes = sae.get("k"), sae.get("d_sae"), sae.get("matryoshka_prefixes")
    if k is not None and d_sae is not None and k >= d_sae:
        return f"sae.k={k} must be below sae.d_sae={d_sae}; lower sae.k or raise sae.d_sae"
    if prefixes is not None and d_sae is not None and list(prefixes)[-1:] != [d_sae]:
        return f"sae.matryoshka_prefixes={list(prefixes)} must end at sae.d_sae={d_sae}; make the last size {d_sae}"
    return None
