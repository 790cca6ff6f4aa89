"""The per-epoch validation: Lightning's eval loop into SAEModule's sums reports the metrics of
docs/concepts.md over the validation rows, whether they come in one batch or in several, and the
searches it caches across epochs answer as the uncached ones do."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from sae_lightning.data.datamodule import EmbeddingDataModule
from sae_lightning.models import sae_config
from sae_lightning.schemas.training import DataConfig, ModuleConfig
from sae_lightning.training.module import SAEModule, nearest, retrieval_recall, unit_rows

K = 10


def validate(module: SAEModule, store, val_batch_size: int) -> dict[str, float]:
    dm = EmbeddingDataModule(store.path, DataConfig(val_fraction=0.1, seed=0, val_batch_size=val_batch_size))
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False, deterministic=True
    )
    trainer.validate(module, datamodule=dm, verbose=False)
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


def expected_recall(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """retrieval_recall@K by its definition: cosines in float64, each query's own row left out."""

    def neighbours(q: torch.Tensor) -> list[set[int]]:
        cos = F.normalize(q, dim=-1) @ F.normalize(x, dim=-1).T
        cos.fill_diagonal_(-np.inf)
        return [set(row.argsort(descending=True)[:K].tolist()) for row in cos]

    return float(np.mean([len(a & b) / K for a, b in zip(neighbours(x), neighbours(x_hat))]))


def test_validation_reports_the_formulas_over_its_rows_in_one_batch_or_many(small_store):
    torch.manual_seed(0)
    sae = sae_config("topk", d_in=small_store.dim, d_sae=256, k=8)
    module = SAEModule(sae, ModuleConfig(retrieval_k=K, retrieval_queries=40))
    one, many = validate(module, small_store, 8192), validate(module, small_store, 7)  # 60 rows: 1 batch, 9

    dm = EmbeddingDataModule(small_store.path, DataConfig(val_fraction=0.1, seed=0))
    dm.setup("validate")
    x = torch.from_numpy(np.asarray(small_store.embeddings)[dm.val_idx]).double()
    with torch.no_grad():
        out = module.sae(x.float())
    x_hat = out.x_hat.double()
    sse = (x - x_hat).pow(2).sum()
    expected = {
        "val/fve": 1 - sse / (x - x.mean(0)).pow(2).sum(),
        "val/nmse": sse / x.pow(2).sum(),
        "val/mse": sse / len(x),
        "val/cos_sim": F.cosine_similarity(x, x_hat, dim=-1).mean(),
        "val/l0": (out.z > 0).sum(1).double().mean(),
        f"val/retrieval_recall@{K}": expected_recall(x[:40], x_hat[:40]),
    }
    for name, value in expected.items():
        assert abs(one[name] - float(value)) < 1e-5, (name, one[name], float(value))
        assert abs(many[name] - one[name]) < 1e-5, (name, many[name], one[name])
    assert 0 < one["val/fve"] < 1 and one[f"val/retrieval_recall@{K}"] > 0
    assert module.val_metrics == {k[len("val/") :]: v for k, v in many.items()}  # what the export writes


def test_the_cached_unit_rows_give_the_same_neighbours_and_recall_to_the_bit():
    """Validation normalises its query rows once per run and passes them in."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(300, 24, generator=gen)
    x_hat = x + 0.3 * torch.randn(300, 24, generator=gen)
    unit = unit_rows(x)
    assert torch.equal(nearest(x_hat, x, K, unit_corpus=unit), nearest(x_hat, x, K))
    assert torch.equal(nearest(x, x, K, unit_corpus=unit), nearest(x, x.clone(), K))  # the same rows: one pass
    true = nearest(x, x, K)
    assert torch.equal(retrieval_recall(x, x_hat, K, true=true, unit_x=unit), retrieval_recall(x, x_hat, K))
