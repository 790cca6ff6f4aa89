"""The KeyBERT labelling callback in a real Lightning Trainer on a small real store: labelling at
epoch end writes the features table and a W&B offline table once; disabled, it does nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytorch_lightning as pl
import torch

from sae_lightning.data.datamodule import EmbeddingDataModule
from sae_lightning.labels import FEATURE_COLUMNS, LabelingConfig
from sae_lightning.run_dir import RunDir
from sae_lightning.schemas.training import DataConfig

from .test_interpret import topk_sae


class TinySAEModule(pl.LightningModule):
    def __init__(self, sae) -> None:
        super().__init__()
        self.sae = sae

    def training_step(self, batch, batch_idx):
        return self.sae.loss_terms(batch, self.sae(batch))["loss"]

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def test_callback_writes_features_and_wandb_table(small_store, tmp_path):
    from pytorch_lightning.loggers import WandbLogger

    from sae_lightning.labels.training_callback import KeyBERTLabels

    sae = topk_sae(small_store.dim, d_sae=32, k=4)
    dm = EmbeddingDataModule(small_store.path, DataConfig(batch_size=128, val_fraction=0.2, seed=0))
    logger = WandbLogger(offline=True, save_dir=str(tmp_path), project="sae-lightning-tests")
    callback = KeyBERTLabels(LabelingConfig(every_n_epochs=1, m=10, top_n=2), output_dir=tmp_path / "run")
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        devices=1,
        logger=logger,
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(TinySAEModule(sae), datamodule=dm)
    run_dir = Path(logger.experiment.dir)
    logger.experiment.finish()

    df = RunDir(tmp_path / "run").labeling().read_features()  # each labelled epoch: a labelling, the last current
    assert list(df.columns) == FEATURE_COLUMNS and len(df) == 32 and len(RunDir(tmp_path / "run").labelings()) == 1
    assert callback.last_summary["n_features"] == 32 and callback.last_summary["n_labelled"] > 0
    tables = list(run_dir.glob("media/table/features_*.table.json"))
    assert len(tables) == 1, list(run_dir.rglob("*"))  # epoch end and fit end at the same step: labelled once
    table = json.loads(tables[0].read_text())
    assert "label" in table["columns"] and "top_texts" in table["columns"] and len(table["data"]) == 32


def test_callback_disabled_does_nothing(small_store, tmp_path):
    from sae_lightning.labels.training_callback import KeyBERTLabels

    callback = KeyBERTLabels(LabelingConfig(enabled=False, every_n_epochs=1), output_dir=tmp_path)
    dm = EmbeddingDataModule(small_store.path, DataConfig(batch_size=128, val_fraction=0.2, seed=0))
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        devices=1,
        logger=False,
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(TinySAEModule(topk_sae(small_store.dim, d_sae=16, k=2)), datamodule=dm)
    assert callback.last_summary is None and RunDir(tmp_path).labeling() is None
