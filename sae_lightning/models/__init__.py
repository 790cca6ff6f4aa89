"""Pure-torch sparse autoencoders (no Lightning): one base, one small module per variant."""

from .base import (
    ARCHITECTURES,
    SAEConfig,
    SAEOutput,
    SparseAutoencoder,
    build_sae,
    geometric_median,
)
from .batchtopk import BatchTopKSAE
from .jumprelu import JumpReLUSAE
from .matryoshka import MatryoshkaBatchTopKSAE, MatryoshkaSAE
from .relu import ReLUSAE
from .synthetic import sparse_dictionary_data
from .topk import TopKSAE, fvu

__all__ = [
    "ARCHITECTURES",
    "BatchTopKSAE",
    "JumpReLUSAE",
    "MatryoshkaBatchTopKSAE",
    "MatryoshkaSAE",
    "ReLUSAE",
    "SAEConfig",
    "SAEOutput",
    "SparseAutoencoder",
    "TopKSAE",
    "build_sae",
    "fvu",
    "geometric_median",
    "sparse_dictionary_data",
]
