"""The memory an SAE's training needs, estimated and checked against what the machine has before
any tensor is allocated: `sae.d_sae=10000000` is one line, not an allocation traceback minutes in.

The estimate is a floor: float32 weights with their gradients and Adam's two moments (16 bytes a
parameter), and a batch's dense pre-activations, activations and their gradient (12 bytes a
latent a sample). What it leaves out (Lightning, the data) only makes the real need larger."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError

BYTES_PER_PARAMETER = 4 * 4  # weight, gradient, Adam's exp_avg and exp_avg_sq, float32 each
BYTES_PER_LATENT = 3 * 4  # per sample and latent: pre-activation, activation, gradient


def training_bytes(d_in: int, d_sae: int, batch_size: int) -> int:
    parameters = 2 * d_in * d_sae + d_in + d_sae  # W_enc, W_dec, b_enc, b_dec
    return parameters * BYTES_PER_PARAMETER + batch_size * d_sae * BYTES_PER_LATENT


def available_bytes(accelerator: str) -> tuple[int, str] | None:
    """Free memory where training runs: the GPU's, else RAM (Linux's MemAvailable); None unknown."""
    import torch

    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        if torch.cuda.is_available():
            return torch.cuda.mem_get_info()[0], "free GPU memory"
        return None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024, "available memory"
    except OSError:
        pass
    return None


def check_training_fits(d_in: int, d_sae: int, batch_size: int, accelerator: str) -> None:
    need = training_bytes(d_in, d_sae, batch_size)
    have = available_bytes(accelerator)
    if have is not None and need > have[0]:
        raise UserError(
            f"sae.d_sae={d_sae} at d_in={d_in} and data.batch_size={batch_size} needs at least "
            f"{need / 2**30:.1f} GiB to train (weights, gradients, Adam, a batch), more than the "
            f"{have[0] / 2**30:.1f} GiB of {have[1]}; lower sae.d_sae or data.batch_size"
        )
