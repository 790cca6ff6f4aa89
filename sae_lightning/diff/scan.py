"""One streaming pass of the SAE over a group: per feature, how many texts it fires on and its
top-activating texts there. Memory O(d_sae x examples) however large the group."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..scan.top_examples import SparseRunningTopK
from ..search import encode
from .groups import Group


@dataclass
class GroupScan:
    n: int  # texts in the group
    fire_counts: np.ndarray  # [d_sae] int64: texts the feature fires on (activation > 0)
    top_rows: np.ndarray  # [d_sae, m] int64: group-local indices of its top texts, -1 padding
    top_acts: np.ndarray  # [d_sae, m] float32

    def examples(self, group: Group, feature: int) -> list[str]:
        return [str(group.texts[r]) for r in self.top_rows[feature] if r >= 0]


def scan_group(sae, group: Group, examples: int = 3, batch_size: int = 1024) -> GroupScan:
    d_sae = sae.cfg.d_sae
    counts = torch.zeros(d_sae, dtype=torch.long)
    top = SparseRunningTopK(d_sae, max(examples, 1), torch.device("cpu"))
    start = 0
    for emb in group.batches(batch_size):
        z = encode(sae, emb).cpu()
        r, f = (z > 0).nonzero(as_tuple=True)
        counts += torch.bincount(f, minlength=d_sae)
        top.update_sparse(f, r + start, z[r, f])
        start += len(emb)
    rows = top.rows.numpy()
    acts = top.values.clamp_min(0).numpy()
    rows[acts <= 0] = -1
    return GroupScan(n=start, fire_counts=counts.numpy(), top_rows=rows[:, :examples], top_acts=acts[:, :examples])
