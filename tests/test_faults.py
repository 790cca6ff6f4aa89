"""Faults from outside, as they happen to real runs: kill -9 at each stage, Ctrl-C and SIGTERM, two
runs at once, a damaged checkpoint, a resume with other settings, a diverging run. Every process
is the real console script; a kill lands when a file it writes appears (observed from outside)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from sae_lightning.errors import UserError
from sae_lightning.models import sparse_dictionary_data
from sae_lightning.pipeline import train
from sae_lightning.store import EmbeddingStore

from .conftest import SMALL_TOPICS, compose_cfg

BIN = Path(sys.executable).parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
QUIET = ["logger=none", "trainer.enable_progress_bar=false"]
TOPICS = "[" + ",".join(f'"{t}"' for t in SMALL_TOPICS) + "]"
# The conftest's small run: 600 sentences, 540 for training, 4 steps of 128 per epoch.
WIKI = ["domain=wiki_all", f"domain.topics={TOPICS}", "domain.limit=600", "sae.d_sae=128", "sae.k=8",
        "data.batch_size=128", "trainer.max_epochs=3", "callbacks.periodic_checkpoint.every_n_train_steps=2",
        *QUIET]


def start(cmd: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / cmd), *args], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def finish(cmd: str, *args: str) -> subprocess.CompletedProcess:
    res = subprocess.run([str(BIN / cmd), *args], env=ENV, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    return res


def wait_for(proc: subprocess.Popen, ready, timeout: float = 300) -> None:
    """Poll until `ready()`; fail if the process ends first (the kill would then test nothing)."""
    deadline = time.time() + timeout
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} before the fault point: {proc.stderr.read()[-3000:]}")
        assert time.time() < deadline, "the fault point never came"
        time.sleep(0.01)


def kill9_when(proc: subprocess.Popen, ready) -> None:
    wait_for(proc, ready)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def same_results(a: Path, b: Path) -> None:
    """The files of two finished runs agree: weights bit for bit, tables and metrics exactly."""
    for name in ("sae_weights.safetensors", "sparsity.safetensors"):
        wa, wb = load_file(a / "sae" / name), load_file(b / "sae" / name)
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), name
    untimed = [json.loads((p / "metrics.json").read_text()) for p in (a, b)]
    untimed = [{k: v for k, v in m.items() if not k.startswith("time")} for m in untimed]
    assert untimed[0] == untimed[1]
    for table in ("features.parquet", "families.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(a / table), pd.read_parquet(b / table))
    assert (b / "report.html").is_file() and (b / "summary.md").is_file()


def resume(run: Path, args: list[str]) -> tuple[str, ...]:
    """The documented way on: sae-train ckpt_path=last until training is exported, then sae-label."""
    if (run / "metrics.json").is_file():
        return ("sae-label", f"run_dir={run}")
    return ("sae-train", *args, "ckpt_path=last")


@pytest.mark.slow
def test_kill9_at_every_stage_then_resume_ends_like_an_uninterrupted_run(tmp_path):
    """The default run (labels, families, report), killed in turn while it embeds, trains (after a
    mid-epoch checkpoint), exports, labels, builds families and writes the report; each time
    resumed the documented way. The end equals one uninterrupted run's, store included."""
    # Shards of 100 texts are embedded in batches unlike the session store's, so the reference has its own.
    reference = tmp_path / "reference"
    finish("sae-train", *WIKI, f"paths.cache_dir={tmp_path / 'ref_cache'}", "embedder.shard_size=100",
           f"run_dir={reference}")

    run, cache = tmp_path / "run", tmp_path / "cache"
    args = [*WIKI, f"paths.cache_dir={cache}", f"run_dir={run}", "embedder.shard_size=100"]
    kill9_when(start("sae-train", *args), lambda: any(cache.glob("stores/*/shards/shard_*.npy")))  # embed
    kill9_when(start("sae-train", *args), lambda: (run / "checkpoints" / "last.ckpt").is_file())    # train
    step = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert 0 < step < 12 and step % 4, f"the kill should land mid-epoch, not at step {step}"
    kill9_when(start(*resume(run, args)), lambda: (run / "sae").is_dir())                          # export
    kill9_when(start(*resume(run, args)), lambda: (run / "metrics.json").is_file())                # label
    assert (run / "sae" / "sae_weights.safetensors").is_file(), "the SAE is written before labelling"
    kill9_when(start(*resume(run, args)), lambda: (run / "features.parquet").is_file())            # families
    kill9_when(start(*resume(run, args)), lambda: (run / "families.parquet").is_file())            # report
    finish(*resume(run, args))

    stores = [EmbeddingStore(next(p for p in (c / "stores").iterdir() if p.is_dir())) for c in (cache, tmp_path / "ref_cache")]
    assert np.array_equal(np.asarray(stores[0].embeddings), np.asarray(stores[1].embeddings))
    same_results(reference, run)
