"""Pure-torch sparse autoencoders (no Lightning): a small shared base (base.py), one file per variant
(its config, the `sae` group's schema for it, is schemas/sae.py), the SAELens folder I/O
(saelens_files.py), and the compute kernels under them (kernels/). `build_sae(sae_config("topk",
d_in=384, k=32))` builds one."""

from ..schemas.sae import BatchTopKConfig, JumpReLUConfig, MatryoshkaConfig, ReLUConfig, SAEConfig, TopKConfig
from .base import SparseAutoencoder
from .batchtopk import BatchTopKSAE
from .jumprelu import JumpReLUSAE
from .matryoshka import MatryoshkaBatchTopKSAE, MatryoshkaSAE
from .output import SAEOutput
from .registry import ARCHITECTURES, build_sae, sae_config
from .relu import ReLUSAE
from .synthetic import sparse_dictionary_data
from .topk import TopKSAE, fvu
from .training import geometric_median

__all__ = [
    "ARCHITECTURES",
    "BatchTopKConfig",
    "BatchTopKSAE",
    "JumpReLUConfig",
    "JumpReLUSAE",
    "MatryoshkaBatchTopKSAE",
    "MatryoshkaConfig",
    "MatryoshkaSAE",
    "ReLUConfig",
    "ReLUSAE",
    "SAEConfig",
    "SAEOutput",
    "SparseAutoencoder",
    "TopKConfig",
    "TopKSAE",
    "build_sae",
    "fvu",
    "geometric_median",
    "sae_config",
    "sparse_dictionary_data",
]
