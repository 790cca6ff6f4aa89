"""The trainers the training benchmarks time, and the yardstick they are all scored by.

bench_training.py (peer comparison), bench_overhead.py, bench_scale.py and gpu_bench.py train the
same TopK SAE (k = K) through each of these: `train_lightning` (this project's real Lightning Trainer
from the composed Hydra config, `compose`), `train_bare` (the same math in a plain PyTorch loop),
`train_hypothesaes` and `train_sparsify` (the peers, at their own defaults). Each returns
(recon fn, samples seen); `fve` scores any recon fn the same way, in float64.
"""

from __future__ import annotations

from pathlib import Path

import torch
from common import K  # (common sets sys.path and env first)

# ---- the common yardstick -----------------------------------------------------------------------


@torch.no_grad()
def fve(recon, X: torch.Tensor, batch: int = 8192) -> float:
    """1 - sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 over X, accumulated in float64."""
    mean = X.double().mean(0)
    sse = sst = 0.0
    for xb in X.split(batch):
        xh = recon(xb).double()
        sse += float(((xb.double() - xh) ** 2).sum())
        sst += float(((xb.double() - mean) ** 2).sum())
    return 1 - sse / sst


def compose(d_sae: int, batch: int | None, select_dtype: str = "float32", extra: tuple[str, ...] = ()):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from sae_lightning.hydra_setup import CONF_DIR, register_hydra

    register_hydra()
    overrides = [
        "logger=none",
        "labeling.enabled=false",
        "sae=topk",
        f"sae.d_sae={d_sae}",
        f"sae.k={K}",
        f"sae.select_dtype={select_dtype}",
    ]
    if batch:
        overrides.append(f"data.batch_size={batch}")
    overrides += list(extra)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides)


# ---- trainers: each returns (recon fn, samples seen) -------------------------------------------


def train_lightning(cfg, store, steps: int, workdir: Path):
    import pytorch_lightning as pl
    from hydra.utils import instantiate
    from pytorch_lightning.loggers import CSVLogger

    from sae_lightning.data.datamodule import EmbeddingDataModule
    from sae_lightning.pipeline import build_module
    from sae_lightning.schemas.knobs import from_node
    from sae_lightning.schemas.training import DataConfig

    pl.seed_everything(0, verbose=False)
    dm = EmbeddingDataModule(str(store.path), from_node(DataConfig, cfg.data))
    module = build_module(cfg, store)
    dead = cfg.callbacks.dead_features
    callbacks = [instantiate(dead)]
    trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=CSVLogger(str(workdir), name="csv"),
        max_epochs=-1,
        max_steps=steps,
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_checkpointing=False,
        default_root_dir=str(workdir),
        enable_model_summary=False,
    )
    deterministic = torch.are_deterministic_algorithms_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    try:
        trainer.fit(module, datamodule=dm)
    finally:  # Trainer(deterministic=True) sets process-wide flags; the peers run after it without them
        torch.use_deterministic_algorithms(deterministic)
        torch.utils.deterministic.fill_uninitialized_memory = fill
    sae = module.sae.eval()
    recon = lambda x: sae(x).x_hat  # noqa: E731
    recon.sae = sae  # bench_scale.py saves the trained SAE
    return recon, steps * cfg.data.batch_size


def shuffled_batches(X: torch.Tensor, batch: int, steps: int, seed: int = 0):
    """`steps` full batches of X, reshuffled each epoch with a seeded generator: the order the bare
    loop and sparsify both train on."""
    gen, step = torch.Generator().manual_seed(seed), 0
    while True:
        order = torch.randperm(len(X), generator=gen)
        for start in range(0, len(X) - batch + 1, batch):
            if step == steps:
                return
            yield X[order[start : start + batch]]
            step += 1


def train_bare(cfg, X: torch.Tensor, steps: int, batches=None, init_sample: torch.Tensor | None = None):
    """The same math as SAEModule + DeadFeatureStats (its fused Adam included), in a plain loop over
    an in-RAM tensor. `batches` (an iterator of at least `steps` batches; default: X reshuffled each
    epoch) and `init_sample` (the rows b_dec starts from; default: a random sample of X) let it
    follow sae-train's own order and start, so that both do the same work (bench_overhead.py)."""
    from omegaconf import OmegaConf

    from sae_lightning.models import SAEConfig, build_sae
    from sae_lightning.training.module import lr_factor

    torch.manual_seed(0)
    m = cfg.module
    sae_cfg = OmegaConf.to_container(cfg.sae, resolve=True)
    sae_cfg.update(d_in=X.shape[1], metadata={})
    sae = build_sae(SAEConfig.from_dict(sae_cfg))
    sample = X[torch.randperm(len(X))[: m.init_sample_size]] if init_sample is None else init_sample
    sae.init_b_dec(sample, m.init_b_dec)
    opt = torch.optim.Adam(sae.parameters(), lr=m.lr, betas=tuple(m.betas), fused=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(steps, m.warmup_steps, m.decay, m.decay_fraction))
    bs, clip = cfg.data.batch_size, cfg.trainer.gradient_clip_val
    dead_after = min(int(cfg.sae.dead_after_samples), len(X))
    since = torch.zeros(sae.cfg.d_sae, dtype=torch.long)
    batches = shuffled_batches(X, bs, steps) if batches is None else batches
    for step, x in zip(range(steps), batches):
        out = sae(x)
        loss = sae.loss_terms(x, out, step=step, dead_mask=since >= dead_after)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        sae.remove_gradient_parallel_to_decoder_directions()
        if clip:
            torch.nn.utils.clip_grad_norm_(sae.parameters(), clip)
        opt.step()
        sched.step()
        sae.set_decoder_norm_to_unit_norm()
        since += len(x)
        since[out.fire_counts > 0] = 0
    sae.eval()
    return (lambda x: sae(x).x_hat), steps * bs


def train_hypothesaes(X: torch.Tensor, d_sae: int, batch: int, samples: int):
    """HypotheSAEs' own entry point, its defaults except the batch; no validation set, so no early
    stopping: it runs the epochs it is given."""
    from hypothesaes import train_sae

    torch.manual_seed(0)
    if samples >= len(X):
        data, epochs = X, max(1, round(samples / len(X)))
    else:
        data, epochs = X[:samples], 1
    sae = train_sae(data.numpy(), M=d_sae, K=K, batch_size=batch, n_epochs=epochs, show_progress=False)
    sae.eval()
    return (lambda x: sae(x)[0]), epochs * len(data)


def train_sparsify(X: torch.Tensor, d_sae: int, batch: int, steps: int, device: str = "cpu"):
    """sparsify's SparseCoder stepped as sparsify.Trainer steps it for loss_fn="fvu" (1.3.3 defaults)."""
    from schedulefree import ScheduleFreeWrapper
    from sparsify import SparseCoder, SparseCoderConfig
    from sparsify.sign_sgd import SignSGD

    torch.manual_seed(0)
    sae = SparseCoder(X.shape[1], SparseCoderConfig(num_latents=d_sae, k=K), device, dtype=torch.float32)
    lr = 5e-3 / (sae.num_latents / 2**14) ** 0.5  # its default for optimizer="signum"
    opt = ScheduleFreeWrapper(SignSGD([{"params": sae.parameters(), "lr": lr}]), momentum=0.95)
    opt.train()
    for step, x in enumerate(shuffled_batches(X, batch, steps)):
        if step == 0:
            sae.b_dec.data = x.mean(0)
        sae.set_decoder_norm_to_unit_norm()
        out = sae(x)
        out.fvu.backward()
        sae.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        opt.zero_grad()
    opt.eval()  # ScheduleFree evaluates (and saves) the averaged weights
    sae.set_decoder_norm_to_unit_norm()
    return (lambda x: sae(x).sae_out), steps * batch
