"""Lightning checkpoints written through the run folder's atomic writer and read back safely.

Lightning's own TorchCheckpointIO writes the file in place: a kill while last.ckpt is rewritten
leaves it empty. Here a checkpoint is a temp file renamed over the old one, and loading never
unpickles code (`weights_only=True`: the state is plain tensors and containers)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from ..atomic import atomic_write
from ..errors import UserError


def load_checkpoint_file(path: str | Path, map_location: Any = "cpu") -> dict:
    """A checkpoint's dict, or one line naming the file and the way out."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise UserError(f"no checkpoint at {path}; pass run_dir=<an earlier run folder> with ckpt_path=last") from None
    except Exception as err:  # truncated (EOFError), garbage (UnpicklingError), not a zip (RuntimeError), ...
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        if isinstance(err, pickle.UnpicklingError):  # torch's line is about weights_only, not the file
            first = "not a file torch.save wrote"
        if path.parent.name == "checkpoints":  # a damaged checkpoint of a run (RunDir.CHECKPOINTS)
            fix = (
                f"resume from another checkpoint in {path.parent} with ckpt_path=<that .ckpt>, or delete the "
                f"run folder {path.parent.parent} and train again"
            )
        else:
            fix = "pass ckpt_path=<a .ckpt that sae-train wrote> (<run>/checkpoints/last.ckpt), or ckpt_path=last"
        raise UserError(f"{path} is not a readable checkpoint ({first[:200]}); {fix}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise UserError(f"{path} is not a Lightning checkpoint (no state_dict); pass ckpt_path=<a .ckpt of sae-train>")
    return ckpt


def check_checkpoint_fits(path: str | Path, module: torch.nn.Module) -> None:
    """A checkpoint of another SAE (another d_in or d_sae) is refused in one line, before Lightning
    would load it into this run's module and fail with a size-mismatch traceback."""
    state, own = load_checkpoint_file(path)["state_dict"], module.state_dict()
    for key, value in state.items():
        if key in own and hasattr(value, "shape") and tuple(value.shape) != tuple(own[key].shape):
            raise UserError(
                f"{path} holds {key} of shape {tuple(value.shape)}, but this run's is "
                f"{tuple(own[key].shape)}: it is a checkpoint of another SAE or data; resume it with "
                "its own domain and sae settings, or drop ckpt_path to start a new run"
            )


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))

    def load_checkpoint(self, path: str | Path, map_location: Any = None, weights_only: bool | None = None) -> dict:
        return load_checkpoint_file(path, map_location if map_location is not None else "cpu")


def prune_epoch_checkpoints(trainer, folder: Path) -> None:
    """Keep the epoch checkpoints callbacks.model_checkpoint.save_top_k promises (one by default) after
    a fit: Lightning forgets the one it would replace when a resumed run's folder has moved since
    the checkpoint was written. Only `epoch=*.ckpt` files of this run's own checkpoints/ go."""
    callbacks = trainer.checkpoint_callbacks
    if any(cb.save_top_k < 0 for cb in callbacks):
        return  # save_top_k=-1: every one is kept
    keep = {Path(p).resolve() for cb in callbacks for p in (cb.best_model_path, *cb.best_k_models) if p}
    if not keep:
        return
    for old in Path(folder).glob("epoch=*.ckpt"):
        if old.resolve() not in keep:
            old.unlink(missing_ok=True)
