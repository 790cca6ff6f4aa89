"""TopK and ReLU SAEs recover a known sparse dictionary, and the synthetic data behind it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sae_lightning.models import SparseAutoencoder, build_sae, sae_config, sparse_dictionary_data

from .test_models import one_thread  # noqa: F401


def train_on_dictionary(sae: SparseAutoencoder, x: torch.Tensor, steps: int, seed: int) -> None:
    """A plain Adam loop with what the trainer adds: decoder geometry and dead-latent counts."""
    opt = torch.optim.Adam(sae.parameters(), lr=3e-3)
    sae.init_b_dec(x[:2048])
    samples_since_fired = torch.zeros(sae.cfg.d_sae, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        xb = x[torch.randint(0, len(x), (256,), generator=gen)]
        out = sae(xb)
        dead = samples_since_fired >= sae.cfg.dead_after_samples
        loss = sae.loss_terms(xb, out, step=step, dead_mask=dead)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        sae.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        sae.set_decoder_norm_to_unit_norm()
        samples_since_fired = torch.where(out.fire_counts > 0, 0, samples_since_fired + len(xb))


@pytest.mark.slow
@pytest.mark.parametrize(
    "architecture, extra, steps",
    [
        ("topk", {"k": 4}, 300),
        ("relu", {"l1_coefficient": 0.1, "l1_warmup_steps": 100}, 500),
    ],
)
def test_sae_recovers_a_known_dictionary(architecture, extra, steps):
    seed = 0
    x, true_dirs = sparse_dictionary_data(20_000, 64, 256, 4, seed=seed)
    torch.manual_seed(seed)
    sae = build_sae(sae_config(architecture, 64, 512, dead_after_samples=5000, **extra))
    train_on_dictionary(sae, x, steps, seed)
    best_cosine = (true_dirs @ F.normalize(sae.W_dec.detach(), dim=1).T).max(dim=1).values
    # Observed over seeds 0-9: topk 0.996-0.997, relu 0.977-0.979.
    assert best_cosine.mean() >= 0.9


def test_synthetic_data_is_seeded_and_sparse():
    x, dirs = sparse_dictionary_data(100, 8, 20, 3, seed=5)
    x2, _ = sparse_dictionary_data(100, 8, 20, 3, seed=5)
    assert torch.equal(x, x2) and x.shape == (100, 8) and dirs.shape == (20, 8)
    torch.testing.assert_close(dirs.norm(dim=1), torch.ones(20))
    with pytest.raises(ValueError, match="active"):
        sparse_dictionary_data(10, 8, 20, 0, seed=0)
