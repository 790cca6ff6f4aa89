"""The CUDA path: every variant trains on the GPU with the same math as on the CPU, and the
`trainer=gpu` / `trainer=ddp` configs run a real sae-train. Marked `gpu`: skipped, with the reason,
where torch sees no CUDA device (tests/conftest.py); benchmarks/gpu_check.sh runs them on a GPU.

On the CPU, TopK trains through its own backward (`_GatherActive`, `_SparseDecode`) and the numba
top-k kernel; on CUDA through dense autograd and torch.topk. Same init and batches, a few Adam
steps: the weight updates must agree to a small fraction of their size (a near-tie at the k-th
place may go the other way on one device, which moves one latent's update, never the whole)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from sae_lightning.models import SAEConfig, build_sae, sparse_dictionary_data

pytestmark = pytest.mark.gpu

D_IN, D_SAE, K, B, STEPS = 64, 1024, 16, 512, 5
VARIANTS = {  # name: (architecture, extra config, dead latents handed to the loss for AuxK)
    "topk+auxk": ("topk", {}, 200),
    "batchtopk": ("batchtopk", {}, 0),
    "jumprelu": ("jumprelu", {}, 0),
    "matryoshka": ("matryoshka", {}, 0),
    "matryoshka-topk": ("matryoshka", {"matryoshka_base": "topk"}, 0),
}


def _train(sae, batches, device: str, n_dead: int) -> dict[str, torch.Tensor]:
    sae = sae.to(device)
    opt = torch.optim.Adam(sae.parameters(), lr=1e-3)
    dead = torch.zeros(D_SAE, dtype=torch.bool)
    dead[:n_dead] = True
    for step, x in enumerate(batches):
        x = x.to(device)
        terms = sae.loss_terms(x, sae(x), step=step, dead_mask=dead.to(device) if n_dead else None)
        opt.zero_grad()
        terms["loss"].backward()
        sae.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        sae.set_decoder_norm_to_unit_norm()
    return {k: v.detach().cpu() for k, v in sae.state_dict().items()}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_a_few_steps_on_cuda_match_the_cpu(name):
    architecture, extra, n_dead = VARIANTS[name]
    torch.manual_seed(0)
    sae = build_sae(SAEConfig(architecture, D_IN, D_SAE, k=K, l1_warmup_steps=0, **extra))
    data = sparse_dictionary_data(B * STEPS, D_IN, 256, 4, seed=0)[0]
    batches = list(data.split(B))
    sae.init_b_dec(batches[0])
    init = {k: v.clone() for k, v in sae.state_dict().items()}
    on_cpu = _train(copy.deepcopy(sae), batches, "cpu", n_dead)
    on_cuda = _train(copy.deepcopy(sae), batches, "cuda", n_dead)
    for key in ("W_enc", "W_dec", "b_enc", "b_dec"):
        moved = on_cpu[key] - init[key]
        gap = (on_cuda[key] - on_cpu[key]).norm() / moved.norm().clamp_min(1e-12)
        assert gap < 2e-2, f"{name} {key}: CUDA's update differs from the CPU's by {gap:.2%} of its size"
    for key in on_cpu:  # thresholds and other buffers too
        torch.testing.assert_close(on_cuda[key], on_cpu[key], rtol=2e-2, atol=2e-3)


def _sae_train(tmp_path, trainer: str, *extra: str) -> subprocess.CompletedProcess:
    x = sparse_dictionary_data(6000, D_IN, 256, 4, seed=1)[0].numpy().astype(np.float16)
    np.save(tmp_path / "x.npy", x)
    cmd = [
        sys.executable,
        "-c",
        "from sae_lightning.cli import train; train()",
        "domain=npy",
        f"domain.path={tmp_path / 'x.npy'}",
        f"trainer={trainer}",
        "trainer.max_epochs=2",
        "logger=csv",
        "labeling.enabled=false",
        "sae.d_sae=512",
        "sae.k=16",
        "data.batch_size=256",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"paths.log_dir={tmp_path / 'outputs'}",
        "embedder.dtype=float16",
        *extra,
    ]
    return subprocess.run(
        cmd, cwd=tmp_path, env={**os.environ, "WANDB_MODE": "offline"}, capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize("trainer", ["gpu", "ddp"])
def test_sae_train_runs_with_the_gpu_trainers(tmp_path, trainer):
    done = _sae_train(tmp_path, trainer)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = list(tmp_path.rglob("sae/cfg.json"))
    assert len(runs) == 1, done.stdout[-2000:]
