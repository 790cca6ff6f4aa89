"""The SAE folder on disk: cfg.json and sae_weights.safetensors in the form SAELens 6 loads
(`sae_lens.SAE.load_from_disk`), plus this project's full config, which SAELens ignores.

SAELens has no ReLU-with-L1, BatchTopK or Matryoshka inference class under our names, so each
variant is written as the SAELens architecture that computes its inference encode exactly:
relu -> "standard", batchtopk and matryoshka over batchtopk -> "jumprelu" with the learned
threshold (as SAELens saves its own BatchTopK), matryoshka over topk -> "topk". Our loader reads
the variant back from the OWN_CONFIG_KEY block, so training details (AuxK, prefixes) survive.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from ..atomic import read_json as read_json_object
from ..errors import UserError
from ..run_schema import OWN_CONFIG_KEY, SPARSITY_FILE
from ..run_schema import SAE_CFG_FILE as CFG_FILE
from ..run_schema import SAE_WEIGHTS_FILE as WEIGHTS_FILE
from ..schemas.sae import WEIGHT_DTYPES
from .registry import ARCHITECTURES

# The functions below take a SparseAutoencoder (base.py imports this module, so it is not imported here).
SparseAutoencoder = nn.Module

REWRITE_HINT = "the SAE files are damaged: save the SAE again (or retrain the run)"

# The dtypes an SAE's weights may be saved in (cfg.dtype)
DTYPES = {name: getattr(torch, name) for name in WEIGHT_DTYPES}
# SAELens treats a cfg.json without a version as pre-6.0 and then drops metadata keys it does not
# know (model_name, domain); this marks the file as the 6.x layout it is.
SAELENS_FORMAT_VERSION = "6.0.0"
_SAELENS_VERSION_KEYS = ("sae_lens_version", "sae_lens_training_version")
# Folders written by SAELens itself carry only its names; theirs that we can load as ours.
_FROM_SAELENS = {"standard": "relu"}


class SAEFileError(UserError):
    """An SAE folder whose cfg.json or safetensors cannot be read as an SAE (names file and fix)."""


def saelens_cfg_json(saelens: dict[str, Any], own: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    """cfg.json: SAELens' fields at the top (architecture under its name), ours in one block."""
    return {
        **saelens,
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "metadata": {**metadata, "sae_lens_version": SAELENS_FORMAT_VERSION},
        OWN_CONFIG_KEY: own,
    }


def write_sae_folder(folder: Path, cfg_json: dict[str, Any], tensors: dict[str, Tensor]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / WEIGHTS_FILE))
    (folder / CFG_FILE).write_text(json.dumps(cfg_json, indent=2) + "\n")
    return folder


def read_own_config(folder: Path) -> dict[str, Any]:
    """The SAEConfig fields of a folder: our block when present, else the SAELens keys themselves
    (a folder SAELens wrote, for the architectures we share)."""
    raw = read_json(folder / CFG_FILE)
    own = raw.get(OWN_CONFIG_KEY)
    spec = dict(own) if isinstance(own, dict) else dict(raw)
    if not isinstance(own, dict):
        spec["architecture"] = _FROM_SAELENS.get(spec.get("architecture"), spec.get("architecture"))
    metadata = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    spec["metadata"] = {k: v for k, v in metadata.items() if k not in _SAELENS_VERSION_KEYS}
    return spec


def _missing(path: Path) -> FileNotFoundError:
    return FileNotFoundError(f"{path}: missing; expected a folder from SparseAutoencoder.save")


def read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise _missing(path)
    return read_json_object(path, REWRITE_HINT, SAEFileError)


def read_safetensors(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise _missing(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise SAEFileError(f"{path}: corrupt or truncated safetensors file ({why}); {REWRITE_HINT}") from None


# ---- one SAE <-> its folder --------------------------------------------------------------------


def cfg_json_of(sae: SparseAutoencoder) -> dict[str, Any]:
    """cfg.json: the SAELens inference architecture that computes our encode, and our own config
    (architecture under our name, the variant's `config_fields`) in a block SAELens ignores."""
    cfg = sae.cfg
    shape = {"d_in": cfg.d_in, "d_sae": cfg.d_sae, "dtype": cfg.dtype}
    saelens = {"architecture": sae.saelens_architecture, **shape}
    if sae.saelens_architecture == "topk":
        saelens["k"] = cfg.k
    own = {"architecture": cfg.architecture, **shape}
    own.update({name: getattr(cfg, name) for name in sae.config_fields})
    return saelens_cfg_json(saelens, own, dict(cfg.metadata))


def save_sae(sae: SparseAutoencoder, folder: Path) -> Path:
    dtype = DTYPES[sae.cfg.dtype]
    tensors = {name: t.detach().to("cpu", dtype).contiguous() for name, t in sae.saelens_tensors().items()}
    return write_sae_folder(folder, cfg_json_of(sae), tensors)


def save_sparsity(folder: Path, log10_density: Tensor, d_sae: int) -> Path:
    if log10_density.shape != (d_sae,):
        raise ValueError(f"log10_density must be [d_sae={d_sae}], got {tuple(log10_density.shape)}")
    path = folder / SPARSITY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"sparsity": log10_density.detach().to("cpu", torch.float32).contiguous()}, str(path))
    return path


@torch.no_grad()
def assign_tensors(sae: SparseAutoencoder, tensors: dict[str, Tensor], source: str) -> None:
    """Copy a weights file's tensors into `sae`, by its SAELens names, after checking each shape."""
    for name, ref in sae.saelens_tensors().items():
        if name not in tensors:
            raise SAEFileError(f"{source}: no tensor {name!r}; the file is not a {sae.architecture} SAE")
        if tensors[name].shape != ref.shape:
            raise SAEFileError(
                f"{source}: {name} has shape {tuple(tensors[name].shape)}, expected {tuple(ref.shape)} from "
                f"cfg.json; {REWRITE_HINT}"
            )
        if tensors[name].is_floating_point() and tensors[name].isnan().any():  # fired no feature, silently
            raise SAEFileError(f"{source}: {name} holds NaN; {REWRITE_HINT}")
        sae._assign(name, tensors[name].to(ref.device, ref.dtype))


def load_sae(folder: Path, cls: type[SparseAutoencoder], device: str | torch.device) -> SparseAutoencoder:
    """The SAE a folder holds, as the variant class its cfg.json names (a subclass of `cls`)."""
    cfg_path = folder / CFG_FILE
    raw = read_own_config(folder)
    architecture = raw.get("architecture")
    if architecture not in ARCHITECTURES:
        raise SAEFileError(
            f"{cfg_path}: unknown architecture {architecture!r}; "
            f"known architectures: {', '.join(sorted(ARCHITECTURES))}"
        )
    variant = ARCHITECTURES[architecture]
    try:
        cfg = variant.config_class.from_dict(raw)
    except (TypeError, ValueError) as err:
        raise SAEFileError(f"{cfg_path}: {err}; {REWRITE_HINT}") from None
    if not issubclass(variant, cls):
        raise SAEFileError(f"{cfg_path}: holds a {architecture!r} SAE, not {cls.__name__}; use SparseAutoencoder.load")
    # Random init would be overwritten anyway; do not let loading move the caller's RNG.
    with torch.random.fork_rng(devices=[]):
        sae = variant.class_for(cfg)(cfg)
    weights_path = folder / WEIGHTS_FILE
    assign_tensors(sae, read_safetensors(weights_path), str(weights_path))
    return sae.to(device)
