"""Other libraries read our files: SAELens loads every variant's sae/ folder and reproduces our
encode and decode, the BatchTopK inference threshold gives k active latents on held-out texts, and
`sae-export` writes a sentence-transformers SparseEncoder whose encode is the run's own."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import pytorch_lightning as pl
import sae_lens  # the interop extra (make test installs it)
import torch

from sae_lightning.data.datamodule import EmbeddingDataModule
from sae_lightning.data.embed import Embedder, build_store
from sae_lightning.errors import UserError
from sae_lightning.export.sentence_transformers import feature_labels, sparse_autoencoder_module
from sae_lightning.models import SparseAutoencoder
from sae_lightning.schemas.sae import SAEConfig
from sae_lightning.schemas.training import DataConfig, ModuleConfig
from sae_lightning.training.module import SAEModule

from .cli_runner import run_script
from .conftest import SMALL_TOPICS, wiki_source

D_SAE, K = 256, 8
# (our architecture, extra config, the SAELens class it loads as)
VARIANTS = {
    "relu": ("relu", {}, "StandardSAE"),
    "topk": ("topk", {}, "TopKSAE"),
    "batchtopk": ("batchtopk", {}, "JumpReLUSAE"),
    "jumprelu": ("jumprelu", {}, "JumpReLUSAE"),
    "matryoshka-topk": ("matryoshka", {"matryoshka_base": "topk"}, "TopKSAE"),
    "matryoshka-batchtopk": ("matryoshka", {"matryoshka_base": "batchtopk"}, "JumpReLUSAE"),
}


@pytest.fixture(scope="module")
def interop_store(cache_dir):
    """3,000 sentences: enough that 256 latents do not memorise the training split, so held-out
    statistics say something about the estimator rather than about overfitting."""
    source = wiki_source(topics=SMALL_TOPICS, limit=3000, seed=0)
    return build_store(source, Embedder(show_progress=False), cache_dir)


@pytest.fixture(scope="module")
def trained(interop_store):
    """Each variant trained 3 epochs (~110 steps) by the real Trainer; with the held-out rows."""
    out = {}
    for name, (architecture, extra, _) in VARIANTS.items():
        pl.seed_everything(0)
        dm = EmbeddingDataModule(interop_store.path, DataConfig(batch_size=64, val_fraction=0.2, seed=0))
        sae_cfg = dict(architecture=architecture, d_in=interop_store.dim, d_sae=D_SAE, k=K, l1_warmup_steps=50, **extra)
        module = SAEModule(SAEConfig.from_dict(sae_cfg), ModuleConfig(warmup_steps=10, init_sample_size=1024))
        trainer = pl.Trainer(
            max_epochs=3,
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
        )
        trainer.fit(module, datamodule=dm)
        out[name] = (module.sae.eval(), dm.dataset[dm.val_idx])
    return out


@pytest.mark.parametrize("name", list(VARIANTS))
def test_saelens_loads_every_variant_and_reproduces_encode_and_decode(name, trained, tmp_path):
    sae, x = trained[name]
    sae.save(tmp_path)
    theirs = sae_lens.SAE.load_from_disk(str(tmp_path))
    assert type(theirs).__name__ == VARIANTS[name][2]
    with torch.no_grad():
        z, z_theirs = sae.encode(x), theirs.encode(x)
        x_hat, x_hat_theirs = sae.decode(z), theirs.decode(z_theirs)
        ours_again = SparseAutoencoder.load(tmp_path).eval()
        assert torch.equal(ours_again.encode(x), z)  # and our own loader gives back the variant exactly
    assert type(ours_again) is type(sae)
    assert (z > 0).any(), "an SAE with no active latent would compare nothing"
    # Two latents whose pre-activations tie at the k-th place to float32 rounding (seen: 0.12271659
    # against 0.12271662 in one row of 600) may be picked either way, as by any two top-k kernels:
    # such a row must carry the same activation values on the swapped latent, and be rare.
    same = ((z - z_theirs).abs() <= 1e-5).all(dim=1)
    assert (~same).float().mean() <= 0.01, f"{(~same).sum()} of {len(z)} rows select other latents"
    torch.testing.assert_close(z_theirs[~same].sort(dim=1).values, z[~same].sort(dim=1).values, rtol=0, atol=1e-5)
    diff = (x_hat - x_hat_theirs)[same].abs().max().item()
    print(
        f"{name}: SAELens {type(theirs).__name__}, max |x_hat diff| {diff:.2e}, "
        f"max |z diff| {(z - z_theirs)[same].abs().max().item():.2e}, k-th place ties {(~same).sum().item()}"
    )
    assert diff <= 1e-5


@pytest.mark.parametrize("name", ["batchtopk", "matryoshka-batchtopk"])
def test_batchtopk_threshold_gives_k_active_latents_on_held_out_texts(name, trained):
    """The inference threshold is an estimate from training batches; on texts it never saw it must
    still keep about k latents per input (a plain EMA from step 0 gave 18.5 for k=8 here)."""
    sae, x = trained[name]
    with torch.no_grad():
        l0 = (sae.encode(x) > 0).sum(-1).float().mean().item()
    print(f"{name}: held-out L0 {l0:.2f} for k={K}")
    assert abs(l0 - K) <= 0.1 * K


# ---- sentence-transformers SparseEncoder --------------------------------------------------------

SENTENCES = [
    "Prime numbers have exactly two divisors.",
    "The Roman Empire fell in 476.",
    "Impressionist painters worked outdoors.",
]


def export(*args: str) -> subprocess.CompletedProcess:
    """`python -m sae_lightning.export.sentence_transformers`, as a process (the module form)."""
    return subprocess.run(
        [sys.executable, "-m", "sae_lightning.export.sentence_transformers", *args], capture_output=True, text=True
    )


def test_sparse_encoder_export_encodes_like_the_run(tiny_labelled_run, tmp_path):
    from sentence_transformers import SparseEncoder

    from sae_lightning.search import embed_query, encode, open_run

    out = tmp_path / "sparse"
    done = export(str(tiny_labelled_run), "--to", "sentence-transformers", "--out", str(out))
    assert done.returncode == 0, done.stderr
    encoder = SparseEncoder(str(out), device="cpu")
    theirs = encoder.encode(SENTENCES, convert_to_tensor=True).to_dense().float()

    run = open_run(tiny_labelled_run)
    ours = encode(run.sae, embed_query(run.model, SENTENCES))
    assert theirs.shape == ours.shape == (3, run.sae.cfg.d_sae)
    assert ((ours > 0).sum(-1) == run.sae.cfg.k).all()
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-5)

    labels = feature_labels(out)
    table = pd.read_parquet(tiny_labelled_run / "features.parquet", columns=["feature_id", "label"])
    assert len(labels) == run.sae.cfg.d_sae and sum(map(bool, labels)) > 0
    # the labels as the labelling wrote them ("mixed: …" where a feature is mixed)
    assert all(labels[f] == (lab or "") for f, lab in zip(table.feature_id, table.label))
    for sentence, row in zip(SENTENCES, theirs):
        top = torch.topk(row, 3).indices.tolist()
        print(sentence, "->", [(f, labels[f], round(float(row[f]), 3)) for f in top])


def test_sparse_encoder_export_refuses_what_it_cannot_write(tiny_labelled_run, tmp_path, trained):
    with pytest.raises(UserError, match="relu SAE cannot be a sentence-transformers SparseAutoEncoder"):
        sparse_autoencoder_module(trained["relu"][0])
    assert sparse_autoencoder_module(trained["matryoshka-topk"][0]).k == K  # TopK at inference: fits

    done = run_script("sae-export", tmp_path / "nowhere", "--to", "sentence-transformers", "--out", tmp_path / "o")
    assert done.code == 2 and done.err.strip().count("\n") == 0 and "not a run dir" in done.err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    done = run_script("sae-export", tiny_labelled_run, "--to", "sentence-transformers", "--out", tmp_path / "full")
    assert done.code == 2 and "exists and holds files this command did not write (x)" in done.err
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["x"]  # nothing written into it
    # the current folder, refused before the run and its model load (was after, by the final rename's check)
    res = run_script("sae-export", tmp_path / "nowhere", "--to", "sentence-transformers", "--out", ".", cwd=tmp_path)
    assert res.code == 2 and "is the current folder (or holds it) and cannot be replaced" in res.err, res.err
