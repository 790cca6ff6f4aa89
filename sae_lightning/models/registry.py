"""Which class is which architecture: each variant registers itself (with its config class) when
its module is imported, and everything that builds an SAE from a name or a cfg.json asks here."""

from __future__ import annotations

from typing import Any

from torch import nn

# Filled by SparseAutoencoder.__init_subclass__ (base.py, which imports this module: hence the plain
# nn.Module and Any annotations here); importing the package registers every variant.
ARCHITECTURES: dict[str, type[nn.Module]] = {}


def variant_class(architecture: Any) -> Any:
    """The SparseAutoencoder subclass registered for `architecture`."""
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"unknown architecture {architecture!r}; known architectures: {', '.join(sorted(ARCHITECTURES))}"
        )
    return ARCHITECTURES[architecture]


def sae_config(architecture: str, d_in: int, d_sae: int | None = None, **knobs: Any) -> Any:
    """The config of `architecture` (its own dataclass, e.g. TopKConfig) from its knobs."""
    config_class = variant_class(architecture).config_class
    unknown = sorted(set(knobs) - config_class.field_names())
    if unknown:
        raise ValueError(
            f"{architecture} SAE has no setting {', '.join(unknown)}; its settings: "
            f"{', '.join(sorted(config_class.field_names() - {'architecture', 'd_in'}))}"
        )
    shape = {"d_in": d_in} if d_sae is None else {"d_in": d_in, "d_sae": d_sae}
    return config_class(architecture=architecture, **shape, **knobs)


def build_sae(cfg: Any) -> Any:
    """The SAE for a config; a variant whose class depends on a setting (Matryoshka's base) picks it here."""
    return variant_class(cfg.architecture).class_for(cfg)(cfg)
