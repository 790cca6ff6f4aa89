"""The train/validation split of a store's rows: training splits by it, and the labelling and
families read only the training rows. Its own module so that those stages load no Lightning."""

from __future__ import annotations

import numpy as np

from ..errors import UserError


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic train/val split of n rows (sorted index arrays), the same everywhere for a seed."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"data.val_fraction={val_fraction} must be in [0, 1)")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    if val_fraction > 0 and n_val == 0 and n > 1:
        n_val = 1
    if n_val >= n > 0:  # every row held out: training had no batch, and its first check named another knob
        raise UserError(
            f"data.val_fraction={val_fraction:g} holds out all {n} rows of the store, leaving none to train on; "
            "lower data.val_fraction"
        )
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])
