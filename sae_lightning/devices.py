"""A torch device named by a setting, tried before anything is loaded onto it: torch's own failure
is an AssertionError for a CUDA it was built without, a RuntimeError for a name it does not know
and a TypeError for a value that is no name; here it is one line naming the setting."""

from __future__ import annotations

from .errors import UserError


def check_device(device: object, setting: str) -> None:
    """`device` (the value of `setting`) can hold a tensor on this machine."""
    import torch

    try:
        torch.empty(0, device=device)
    except (AssertionError, RuntimeError, TypeError) as err:
        reason = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise UserError(f"{setting}={device} cannot be used here ({reason}); use {setting}=cpu") from None
