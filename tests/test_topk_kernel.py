"""The CPU top-k kernel (models/kernels/topk_kernel.py) and the counting sort by latent
(models/kernels/latent_order.py) that TopK training runs on: same answers as torch.topk and a stable argsort."""

from __future__ import annotations

import pytest
import torch

from .test_models import one_thread  # noqa: F401  (tiny tensors: one thread)


def _special_values(dtype: torch.dtype) -> torch.Tensor:
    """Rows that order floats by their bits: signed zeros, tiny and huge magnitudes, infinities."""
    row = torch.tensor([0.0, -0.0, 1e-30, -1e-30, 3.0, -3.0, float("inf"), float("-inf"), 1e30, -1e30, 0.5, -0.5])
    return torch.stack([row, row.flip(0), -row]).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape, k", [((300, 3072), 32), ((33, 517), 8), ((5, 100), 4), ((7, 12), 12), ((3, 40), 1)])
def test_topk_kernel_returns_the_k_largest(shape, k, dtype):
    """The kernel's set is torch.topk's: on random rows (negatives included), on heavy ties
    (integers; then the leftmost tied columns, k distinct ones), at widths that leave a tail after the
    segments, at k = width and k = 1, and on signed zeros and infinities."""
    from sae_lightning.models.kernels.topk_kernel import topk_indices

    gen = torch.Generator().manual_seed(0)
    cases = [
        torch.randn(shape, generator=gen),
        torch.randn(shape, generator=gen) - 3,
        torch.randint(0, 5, shape, generator=gen).float(),
    ]
    for pre in [c.to(dtype) for c in cases] + ([_special_values(dtype)] if shape[1] == 12 else []):
        idx = topk_indices(pre, k)
        assert idx.dtype == torch.int64 and idx.shape == (len(pre), k)
        assert all(len(set(row.tolist())) == k for row in idx)
        ref = pre.topk(k, dim=1).values
        assert torch.equal(pre.gather(1, idx).sort(1, descending=True).values, ref)


def test_topk_kernel_breaks_ties_by_column():
    from sae_lightning.models.kernels.topk_kernel import topk_indices

    pre = torch.tensor([[1.0, 2.0, 2.0, 2.0, 0.0, 2.0, 3.0, 2.0]])
    assert sorted(topk_indices(pre, 3)[0].tolist()) == [1, 2, 6]


def test_topk_kernel_refuses_what_it_cannot_take():
    from sae_lightning.models.kernels.topk_kernel import supports, topk_indices

    assert not supports(torch.randn(4, 8, dtype=torch.float64), 2)
    assert not supports(torch.randn(2, 4, 8), 2) and not supports(torch.randn(4, 8), 9)
    with pytest.raises(ValueError, match="use torch.topk"):
        topk_indices(torch.randn(4, 8, dtype=torch.float16), 2)


def test_latent_order_is_a_stable_sort_by_latent():
    """The counting sort gives what a stable argsort by latent would, with uneven rows (BatchTopK's
    layout) and latents that no entry uses; t_matmul built on it equals the dense Sᵀ @ g."""
    from sae_lightning.models.kernels.latent_order import latent_order
    from sae_lightning.models.topk import ActivePattern

    gen = torch.Generator().manual_seed(0)
    counts = torch.tensor([3, 0, 5, 1, 7])
    idx = torch.randint(0, 20, (int(counts.sum()),), generator=gen)  # repeats across rows, gaps
    offsets = torch.cumsum(counts, 0) - counts
    starts, entry, row = latent_order(idx, offsets, 24)
    assert torch.equal(entry, torch.argsort(idx, stable=True))
    assert torch.equal(
        starts.long(), torch.cat([torch.zeros(1, dtype=torch.long), torch.bincount(idx, minlength=24).cumsum(0)])
    )
    assert torch.equal(row.long(), torch.repeat_interleave(torch.arange(5), counts)[entry])
    vals, g = torch.randn(len(idx), generator=gen), torch.randn(5, 6, generator=gen)
    S = torch.zeros(5, 24).index_put_((torch.repeat_interleave(torch.arange(5), counts), idx), vals, accumulate=True)
    torch.testing.assert_close(ActivePattern(idx, offsets, 24).t_matmul(vals, g), S.t() @ g)


ENCODE_THEN_TRAIN = """
import sys, torch
from sae_lightning.models import SAEConfig, build_sae
sae = build_sae(SAEConfig.from_dict({"architecture": "topk", "d_in": 32, "d_sae": 256, "k": 8})).eval()
x = torch.randn(500, 32, generator=torch.Generator().manual_seed(0))
before = sae.encode(x)
print("numba" in sys.modules)
sae.train()(x)
print("numba" in sys.modules)
print(torch.equal(sae.eval().encode(x), before))
"""


def test_only_a_training_step_loads_the_kernel():
    """An SAE that only encodes (sae-diff, sae-label, the API: hundreds of rows at a time) never loads
    numba, whose ~0.6 s the kernel wins back only over ~250,000 rows; a training step loads it, and
    encoding then runs through it with the same latents."""
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-c", ENCODE_THEN_TRAIN], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.split() == ["False", "True", "True"]
