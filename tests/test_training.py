"""SAE training through the real Hydra config, DataModule and Lightning Trainer: every variant end to
end, recovery of a known dictionary, config and data errors, divergence, W&B offline files and DDP.
Checkpoints and resuming are tested in test_training_checkpoints.py."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from sae_lightning.errors import UserError
from sae_lightning.models import ARCHITECTURES, SparseAutoencoder, sparse_dictionary_data
from sae_lightning.pipeline import train
from sae_lightning.run_dir import RunDir

from .cli_runner import run_process, run_script
from .conftest import compose_cfg
from .wandb_records import logged, records

QUIET = ["logger=none", "labeling.enabled=false", "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module")
def synthetic_npy(tmp_path_factory) -> tuple[Path, torch.Tensor]:
    """4,000 embeddings, each a sparse positive mix of 4 of 128 known unit directions in 32 dims."""
    x, dirs = sparse_dictionary_data(n=4000, d_in=32, n_dirs=128, active=4, seed=0)
    path = tmp_path_factory.mktemp("npy") / "synthetic.npy"
    np.save(path, x.numpy())
    return path, dirs


def run(overrides: list[str], out: Path, cache: Path) -> Path:
    cfg = compose_cfg(overrides, out, cache)
    train(cfg)
    return out


def npy_args(path: Path) -> list[str]:
    return ["domain=npy", f"domain.path={path}", "domain.model_name=synthetic"]


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_variant_trains_end_to_end_saves_and_loads(arch, synthetic_npy, tmp_path, cache_dir):
    path, _ = synthetic_npy
    extra = ["sae.matryoshka_prefixes=[16,64,256]"] if arch == "matryoshka" else []
    out = run(
        [
            f"sae={arch}",
            "sae.d_sae=256",
            *(["sae.k=8"] if arch in ("topk", "batchtopk", "matryoshka") else []),
            "data.batch_size=256",
            "trainer.max_epochs=2",
            *extra,
            *npy_args(path),
            *QUIET,
        ],
        tmp_path / "run",
        cache_dir,
    )
    cfg = json.loads((out / "sae" / "cfg.json").read_text())
    assert cfg["sae_lightning"]["architecture"] == arch and cfg["d_in"] == 32 and cfg["d_sae"] == 256
    assert cfg["metadata"]["model_name"] == "synthetic"
    weights = load_file(out / "sae" / "sae_weights.safetensors")
    assert weights["W_enc"].shape == (32, 256) and weights["W_dec"].shape == (256, 32)
    # Matryoshka's default base is batchtopk (conf/sae/matryoshka.yaml): its inference threshold is saved too.
    assert ("threshold" in weights) == (arch in ("jumprelu", "batchtopk", "matryoshka"))
    assert load_file(out / "sae" / "sparsity.safetensors")["sparsity"].shape == (256,)
    sae = SparseAutoencoder.load(out / "sae")
    assert isinstance(sae, ARCHITECTURES[arch])
    x = torch.from_numpy(np.load(path)[:64])
    assert torch.isfinite(sae.decode(sae.encode(x))).all()
    metrics = RunDir(out).metrics()
    for key in ("fve", "nmse", "cos_sim", "l0", "dead_frac", "dense_frac", "retrieval_recall@10"):
        assert key in metrics, key
    assert (out / "checkpoints" / "last.ckpt").is_file() and (out / "run.json").is_file()


def test_dead_after_samples_in_cfg_json_is_the_one_the_dead_mask_uses(synthetic_npy, tmp_path, cache_dir, caplog):
    """A store smaller than sae.dead_after_samples: the value is fitted before the SAE is built, so
    cfg.json records what AuxK's dead mask counts against (nothing lowers it during training). Said as
    a note: it was a WARNING in the README's own example (one wiki topic), with nothing to fix."""
    from sae_lightning.data.datamodule import split_indices
    from sae_lightning.pipeline import build_module, build_store_from_cfg

    path, _ = synthetic_npy
    cfg = compose_cfg(
        [*npy_args(path), "sae.d_sae=64", "sae.k=4", "sae.dead_after_samples=1000000", *QUIET], tmp_path, cache_dir
    )
    store = build_store_from_cfg(cfg)
    with caplog.at_level("INFO", logger="sae_lightning.pipeline"):
        module = build_module(cfg, store)
    said = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "sae_lightning.pipeline"]
    assert said == [
        ("INFO", "sae.dead_after_samples=1000000 exceeds the 3600 training samples; counting over one epoch instead")
    ]
    n_train = len(split_indices(len(store), cfg.data.val_fraction, cfg.seed)[0])
    assert module.sae.cfg.dead_after_samples == n_train == 3600
    assert module.sae.saelens_cfg()["sae_lightning"]["dead_after_samples"] == n_train
    module.samples_since_fired.fill_(n_train - 1)
    assert not module.dead_mask.any()
    module.samples_since_fired[3] = n_train
    assert module.dead_mask.nonzero().flatten().tolist() == [3]
    assert "samples_since_fired" in module.state_dict()  # checkpointed with the weights


def test_a_fit_that_ends_inside_a_warm_up_says_so(synthetic_npy, tmp_path, cache_dir, caplog):
    """A small corpus at the defaults: 14 steps of 256 never finish module.warmup_steps=100 (the
    README's wiki_mathematics example took 20 and ended at fve -1.3 with no word); a warm-up the fit
    outlasts says nothing, and the sparsity penalty's warm-up is named for the penalised variants."""
    from sae_lightning.training.module import unfinished_warmups

    path, _ = synthetic_npy
    args = [*npy_args(path), "sae.d_sae=64", "sae.k=4", "data.batch_size=256", "trainer.max_epochs=1", *QUIET]
    with caplog.at_level("WARNING", logger="sae_lightning.training.module"):
        run(args, tmp_path / "short", cache_dir)
        run([*args, "module.warmup_steps=10"], tmp_path / "long", cache_dir)
    said = [r.getMessage() for r in caplog.records if r.name == "sae_lightning.training.module"]
    assert said == [
        "the run takes 14 optimiser steps, fewer than module.warmup_steps=100 (the learning rate reaches "
        "at most 14% of module.lr); lower data.batch_size or raise trainer.max_epochs"
    ]
    assert "sae.l1_warmup_steps=1000 (the sparsity penalty reaches at most 50% of its weight)" in unfinished_warmups(
        500, 100, 1000
    )
    assert unfinished_warmups(1000, 100, 1000) is None and unfinished_warmups(5, 0, 0) is None


@pytest.mark.slow
@pytest.mark.parametrize(
    "arch,extra",
    [
        ("topk", ["sae.k=4", "module.lr=0.004"]),
        ("relu", ["sae.l1_coefficient=0.2", "sae.l1_warmup_steps=50", "module.lr=0.004"]),
    ],
)
def test_recovers_a_known_sparse_dictionary(arch, extra, synthetic_npy, tmp_path, cache_dir):
    """112 steps of 256 (8 epochs) through the whole pipeline find the 128 planted directions:
    mean best cosine 0.989 (topk) and 0.971 (relu) when measured, against 0.48 for a random
    dictionary of the same size (the test ran 25 epochs of 64, 12 times the steps, before)."""
    path, true_dirs = synthetic_npy
    out = run(
        [
            f"sae={arch}",
            "sae.d_sae=256",
            "data.batch_size=256",
            "trainer.max_epochs=8",
            "module.warmup_steps=20",
            *extra,
            *npy_args(path),
            *QUIET,
        ],
        tmp_path / "run",
        cache_dir,
    )
    learned = torch.nn.functional.normalize(SparseAutoencoder.load(out / "sae").W_dec, dim=1)
    mean_max_cos = (true_dirs @ learned.T).max(dim=1).values.mean().item()
    assert mean_max_cos >= 0.9, f"{arch}: mean max cosine {mean_max_cos:.3f}"


def test_bf16_mixed_trains_a_topk_sae_on_cpu_as_well_as_float32(synthetic_npy, tmp_path, cache_dir):
    """+trainer.precision=bf16-mixed on a CPU: autocast runs the encoder's matmul in bfloat16 and the
    sparse products (no bf16 CSR kernel in torch) in float32. The run trains, its numbers differ from
    float32's (so bfloat16 did run) by no more than rounding does: fve within 0.01."""
    path, _ = synthetic_npy
    common = ["sae=topk", "sae.d_sae=128", "sae.k=4", "data.batch_size=256", "trainer.max_epochs=3"]
    fve = {
        precision: RunDir(
            run([*common, f"+trainer.precision={precision}", *npy_args(path), *QUIET], tmp_path / precision, cache_dir)
        ).metrics()["fve"]
        for precision in ("32-true", "bf16-mixed")
    }
    assert fve["32-true"] > 0.5, fve
    assert fve["bf16-mixed"] != fve["32-true"] and abs(fve["bf16-mixed"] - fve["32-true"]) < 0.01, fve


def test_weight_decay_shrinks_the_weight_matrices_and_spares_the_biases(synthetic_npy, tmp_path, cache_dir):
    """module.weight_decay > 0 trains with AdamW, decaying W_enc and W_dec (W_dec is renormalised
    after each step, so W_enc shows it) and neither bias; 0, the default, is the plain Adam run."""
    path, _ = synthetic_npy
    common = [
        "sae=topk",
        "sae.d_sae=128",
        "sae.k=4",
        "data.batch_size=256",
        "trainer.max_epochs=2",
        "module.warmup_steps=0",
    ]
    weights = {
        wd: load_file(
            run([*common, f"module.weight_decay={wd}", *npy_args(path), *QUIET], tmp_path / str(wd), cache_dir)
            / "sae"
            / "sae_weights.safetensors"
        )
        for wd in (0.0, 5.0)
    }
    assert weights[5.0]["W_enc"].norm() < 0.9 * weights[0.0]["W_enc"].norm()  # ~(1 - 4e-3 x 5) per step, 28 steps
    # b_dec starts at the same geometric median and moves only by its (undecayed) gradients
    assert torch.allclose(weights[5.0]["b_dec"], weights[0.0]["b_dec"], atol=0.05)
    with pytest.raises(UserError, match=r"module.weight_decay=-0.1 is invalid"):
        run([*common, "module.weight_decay=-0.1", *npy_args(path), *QUIET], tmp_path / "bad", cache_dir)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["sae.k=300", "sae.d_sae=256"], "k=300"),
        (["sae.d_sae=0"], r"sae.d_sae=0 is invalid; set sae.d_sae to a whole number >= 1"),
        (["sae.architecture=gated"], "known architectures: batchtopk, jumprelu, matryoshka, relu, topk"),
        (["+sae.d_in=768"], "sae.d_in=768 but the embedding store .* is 32 wide"),
    ],
)
def test_config_errors_are_caught_before_any_work(overrides, message, synthetic_npy, tmp_path, cache_dir):
    path, _ = synthetic_npy
    with pytest.raises(UserError, match=message):
        run([*overrides, *npy_args(path), *QUIET], tmp_path / "run", cache_dir)
    assert not (tmp_path / "run" / "checkpoints").exists()


def _corrupt_store_copy(cache_dir: Path, tmp_path: Path, npy: Path, value: float) -> Path:
    """A real store whose embeddings file was damaged after it was written (NaN or huge values)."""
    from sae_lightning.data.embed import Embedder, build_store
    from sae_lightning.data.sources import NpyEmbeddings
    from sae_lightning.schemas.domain import NpyConfig

    # The same store the run asks for: the fingerprint covers domain.model_name.
    store = build_store(
        NpyEmbeddings(NpyConfig(path=str(npy), model_name="synthetic")),
        Embedder(show_progress=False),
        tmp_path / "cache",
    )
    emb = np.load(store.path / "embeddings.npy", mmap_mode="r+")
    emb[700:710] = value
    emb.flush()
    return tmp_path / "cache"


def test_nan_in_a_batch_stops_with_the_step_number(synthetic_npy, tmp_path, cache_dir):
    path, _ = synthetic_npy
    cache = _corrupt_store_copy(cache_dir, tmp_path, path, np.nan)
    args = ["sae.d_sae=64", "sae.k=4", "data.batch_size=256", *npy_args(path), *QUIET]
    with pytest.raises(UserError, match=r"batch at step \d+ holds NaN or Inf"):
        run([*args, "module.init_sample_size=100"], tmp_path / "run", cache)  # init rows are clean
    with pytest.raises(UserError, match=r"sample for the b_dec init holds NaN"):
        run(args, tmp_path / "run2", cache)


def test_all_finite_answers_for_every_kind_of_batch():
    """The one-reduction check: NaN and Inf anywhere are caught, and a clean batch whose sum
    overflows float32 is still clean (checked entry by entry)."""
    from sae_lightning.training.module import all_finite

    x = torch.randn(64, 8)
    assert all_finite(x) and all_finite(x.half())
    for bad in (float("nan"), float("inf"), float("-inf")):
        y = x.clone()
        y[17, 3] = bad
        assert not all_finite(y) and not all_finite(y.half())
    assert all_finite(torch.full((4, 4), 3e38))  # the sum is inf, every entry finite


def test_retrieval_recall_with_the_queries_own_neighbours_given_is_the_same():
    """Validation finds the queries' true neighbours once per run and passes them in: the recall
    must not change, and x̂ = x (or a rescaled x) finds every neighbour."""
    from sae_lightning.training.module import nearest, retrieval_recall

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 16, generator=gen)
    x_hat = x + 0.5 * torch.randn(200, 16, generator=gen)
    given = retrieval_recall(x, x_hat, 10, true=nearest(x, x, 10))
    assert given == retrieval_recall(x, x_hat, 10) and 0 < given < 1
    assert retrieval_recall(x, 3 * x, 10, true=nearest(x, x, 10)) == 1
    assert 10 not in nearest(x, x, 10)[10]  # a query is never its own neighbour


@pytest.mark.slow
@pytest.mark.parametrize("lr,warmup", [(1e6, 0), (1e6, 100_000)])
def test_a_diverging_run_stops_and_keeps_a_checkpoint_from_before(lr, warmup, synthetic_npy, tmp_path, cache_dir):
    """module.lr=1e6 wrecks the weights at the first update; ramped up over a long warm-up it does
    so some steps in. Either way the run stops (exit 2, no sae/, no metrics.json) and last.ckpt,
    written every step, holds a state from before the bad update."""
    path, _ = synthetic_npy
    out = tmp_path / "run"
    with pytest.raises(
        UserError, match=r"training stopped: .*at step (\d+).*; (no checkpoint|.*last.ckpt \(step \d+\) keeps)"
    ) as err:
        run(
            [
                "sae.d_sae=64",
                "sae.k=4",
                "data.batch_size=256",
                f"module.lr={lr}",
                f"module.warmup_steps={warmup}",
                "callbacks.periodic_checkpoint.every_n_train_steps=1",
                *npy_args(path),
                *QUIET,
            ],
            out,
            cache_dir,
        )
    assert not (out / "sae").exists() and not (out / "metrics.json").exists()
    failed_at = int(re.search(r"at step (\d+)", str(err.value)).group(1))
    if warmup == 0:
        assert failed_at == 0 and "no checkpoint was written" in str(err.value)
        return
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert 0 < ckpt["global_step"] <= failed_at
    for name, t in ckpt["state_dict"].items():
        if not name.startswith("sae.") or not t.is_floating_point():
            continue  # the dead-latent counters are counts, not weights
        assert torch.isfinite(t.float()).all() and t.float().pow(2).mean().sqrt() <= 100, name


@pytest.mark.slow
def test_wandb_offline_run_holds_the_logged_metrics(synthetic_npy, tmp_path, cache_dir):
    path, _ = synthetic_npy
    out = run(
        [
            "logger=wandb",
            "labeling.enabled=false",
            "trainer.enable_progress_bar=false",
            "sae.d_sae=64",
            "sae.k=4",
            "data.batch_size=256",
            "trainer.max_epochs=2",
            "trainer.log_every_n_steps=2",
            *npy_args(path),
        ],
        tmp_path / "run",
        cache_dir,
    )
    (run_file,) = (out / "wandb").glob("offline-run-*/run-*.wandb")
    config, summary, history = logged(run_file)
    for key in (
        "val/fve",
        "val/l0",
        "val/retrieval_recall@10",
        "train/loss",
        "train/dead_frac",
        "train/dense_frac",
        "train/lr",
        "train/log10_feature_density/bins",
    ):
        assert key in summary, key
    assert abs(summary["val/fve"] - RunDir(out).metrics()["fve"]) < 1e-6
    assert sum("train/loss" in row for row in history) >= 2  # logged per step, not only once
    assert config["cfg"]["sae"]["d_sae"] == 64 and config["store"]["dim"] == 32
    # the reader sees the file as it is while wandb-core flushes: a record cut short ends the list
    whole = records(run_file)
    cut = tmp_path / "cut.wandb"
    cut.write_bytes(run_file.read_bytes()[: run_file.stat().st_size - 3])
    assert [r.SerializeToString() for r in records(cut)] == [r.SerializeToString() for r in whole[:-1]]


@pytest.mark.slow
def test_ddp_on_cpu_matches_a_single_process(synthetic_npy, tmp_path):
    """2 gloo processes with half the batch each take the same steps over the same data as one
    process: their metrics agree within noise."""
    path, _ = synthetic_npy
    common = [
        *npy_args(path),
        "sae.d_sae=128",
        "sae.k=8",
        "trainer.max_epochs=3",
        *QUIET,
        f"paths.cache_dir={tmp_path / 'cache'}",
    ]
    results = {}
    for name, extra in (("single", ["data.batch_size=128"]), ("ddp", ["trainer=ddp_cpu", "data.batch_size=64"])):
        out = tmp_path / name
        argv = [*common, *extra, f"run_dir={out}"]
        if name == "ddp":  # the console script, as users run it: DDP ranks are started by re-running that command
            res = run_process(Path(sys.executable).parent / "sae-train", *argv, timeout=600)
        else:
            res = run_script("sae-train", *argv)
        assert res.code == 0, res.out[-2000:] + res.err[-3000:]
        results[name] = RunDir(out).metrics()
        assert len(list(tmp_path.glob(f"{name}*"))) == 1  # one output folder, not one per rank
    assert abs(results["single"]["fve"] - results["ddp"]["fve"]) < 0.03
    assert abs(results["single"]["l0"] - results["ddp"]["l0"]) < 1.0
