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

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from ..errors import UserError

CFG_FILE = "cfg.json"
REWRITE_HINT = "the SAE files are damaged: save the SAE again (or retrain the run)"
WEIGHTS_FILE = "sae_weights.safetensors"
SPARSITY_FILE = "sparsity.safetensors"

# Our complete SAEConfig (architecture under our name and the variant's own fields).
OWN_CONFIG_KEY = "sae_lightning"
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
    (folders written before the block existed, or by SAELens for the architectures we share)."""
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
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise _missing(path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SAEFileError(f"{path}: corrupt JSON ({str(err).splitlines()[0]}); {REWRITE_HINT}") from None
    if not isinstance(raw, dict):
        raise SAEFileError(f"{path}: expected a JSON object, got {type(raw).__name__}; {REWRITE_HINT}")
    return raw


def read_safetensors(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise _missing(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise SAEFileError(f"{path}: corrupt or truncated safetensors file ({why}); {REWRITE_HINT}") from None
