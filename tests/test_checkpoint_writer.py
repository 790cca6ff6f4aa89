"""Checkpoints written on the writer thread (AtomicCheckpointIO's default): each file holds the
state at its save although the next steps change the tensors in place, writes, links and removals
land in the order they were asked for, and a failed write is raised, never lost."""

from __future__ import annotations

import time

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from sae_lightning.data.datamodule import EmbeddingDataModule
from sae_lightning.data.embed import build_store_from_cfg
from sae_lightning.pipeline import build_module
from sae_lightning.schemas.knobs import from_node
from sae_lightning.schemas.training import DataConfig
from sae_lightning.training.checkpoint_io import AtomicCheckpointIO, load_checkpoint_file

from .conftest import compose_cfg
from .test_training import QUIET, npy_args, synthetic_npy  # noqa: F401 (synthetic_npy is a fixture)


def same(a, b) -> bool:
    """Two loaded checkpoints hold the same values, tensor for tensor (dtypes included)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return type(a) is type(b) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


class SlowDisk(AtomicCheckpointIO):
    """The writer thread on a slow disk: each job starts 50 ms late, so the steps after a save run
    while its file is still to be written (a tiny SAE's file is otherwise written before they do)."""

    def _submit(self, job, *args) -> None:
        super()._submit(lambda *a: (time.sleep(0.05), job(*a)), *args)


def fit_saving_every_step(background: bool, path, folder, cache_dir) -> list:
    """A real Trainer over the tiny store, a checkpoint after every step; the files, step by step."""
    cfg = compose_cfg(["sae.d_sae=64", "sae.k=4", "data.batch_size=512", *npy_args(path), *QUIET], folder, cache_dir)
    store = build_store_from_cfg(cfg)
    pl.seed_everything(0, verbose=False)
    every_step = ModelCheckpoint(dirpath=folder, filename="{step}", every_n_train_steps=1, save_top_k=-1)
    trainer = pl.Trainer(
        max_epochs=2,
        callbacks=[every_step],
        plugins=[SlowDisk(background=background)],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        deterministic=True,
        gradient_clip_val=1.0,
    )
    data = EmbeddingDataModule(str(store.path), from_node(DataConfig, cfg.data))
    trainer.fit(build_module(cfg, store), datamodule=data)
    return sorted(folder.glob("step=*.ckpt"), key=lambda p: int(p.stem.split("=")[1]))


def test_each_background_checkpoint_holds_its_own_step_like_a_synchronous_one(synthetic_npy, tmp_path, cache_dir):  # noqa: F811 (the imported fixture, by name)
    """The same seeded fit with the writer thread and without: every step's file loads to the same
    weights, Adam moments, loop and data positions, so none holds a later step's tensors."""
    path, _ = synthetic_npy
    sync = fit_saving_every_step(False, path, tmp_path / "sync", cache_dir)
    background = fit_saving_every_step(True, path, tmp_path / "background", cache_dir)
    assert [p.name for p in background] == [p.name for p in sync] and len(sync) == 2 * (4000 * 9 // 10 // 512)
    for a, b in zip(sync, background):
        ca, cb = load_checkpoint_file(a), load_checkpoint_file(b)
        for key in ("state_dict", "optimizer_states", "lr_schedulers", "loops", "global_step", "epoch"):
            assert same(ca[key], cb[key]), (a.name, key)
    first, last = (load_checkpoint_file(p)["state_dict"]["sae.W_enc"] for p in (background[0], background[-1]))
    assert not torch.equal(first, last)  # the steps did change the weights the early files hold


def test_the_writer_thread_keeps_the_state_of_the_save_and_the_order_of_the_requests(tmp_path):
    io = SlowDisk()
    weights = torch.arange(6.0)
    io.save_checkpoint({"state_dict": {"w": weights}, "step": 1}, tmp_path / "epoch=0.ckpt")
    weights.mul_(-1)  # the next step, in place, while the file may still be written
    io.link(tmp_path / "epoch=0.ckpt", tmp_path / "last.ckpt")  # runs after the write it names
    io.save_checkpoint({"state_dict": {"w": weights}, "step": 2}, tmp_path / "epoch=1.ckpt")
    io.remove_checkpoint(tmp_path / "epoch=0.ckpt")
    io.teardown()
    last = load_checkpoint_file(tmp_path / "last.ckpt")
    assert last["step"] == 1 and torch.equal(last["state_dict"]["w"], torch.arange(6.0))
    assert not (tmp_path / "epoch=0.ckpt").exists()  # removed after the link: last.ckpt keeps its bytes
    assert torch.equal(load_checkpoint_file(tmp_path / "epoch=1.ckpt")["state_dict"]["w"], -torch.arange(6.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch=1.ckpt", "last.ckpt"]  # no temp file left


def test_a_failed_background_write_is_raised_once_and_the_later_writes_still_land(tmp_path):
    (tmp_path / "blocker").write_text("a file where the checkpoint folder should be")
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1}, tmp_path / "blocker" / "last.ckpt")  # its folder cannot be made
    with pytest.raises(OSError):
        io.wait()
    io.save_checkpoint({"state_dict": {}, "step": 2}, tmp_path / "ok" / "last.ckpt")
    io.teardown()  # the failure was raised already: not again
    assert load_checkpoint_file(tmp_path / "ok" / "last.ckpt")["step"] == 2


def test_the_fit_end_raises_a_failed_write_that_nothing_asked_about(tmp_path):
    (tmp_path / "blocker").write_text("")
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1}, tmp_path / "blocker" / "last.ckpt")
    with pytest.raises(OSError):
        io.teardown()


def test_slurms_requeue_checkpoint_is_on_disk_when_its_save_returns(tmp_path):
    """Lightning's SLURM handler requeues the job (which then ends) right after saving hpc_ckpt_<n>:
    that one is written before the save returns, after the checkpoints asked for before it."""
    io = SlowDisk()
    io.save_checkpoint({"state_dict": {}, "step": 1}, tmp_path / "last.ckpt")
    io.save_checkpoint({"state_dict": {}, "step": 2}, tmp_path / "hpc_ckpt_1.ckpt")
    assert load_checkpoint_file(tmp_path / "hpc_ckpt_1.ckpt")["step"] == 2
    assert load_checkpoint_file(tmp_path / "last.ckpt")["step"] == 1
    io.teardown()
