"""Embedding at scale: metadata read in slices, bf16 inference keyed into the fingerprint, and the
same store bit for bit whether one process, a two-worker pool or two concurrent `sae-embed` build it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sae_lightning.data.embed import Embedder, build_store
from sae_lightning.data.sources import SourceError
from sae_lightning.data.store import EmbeddingStore

from .conftest import wiki_source

SOURCE = dict(topics=["Mathematics", "Arts"], limit=200, seed=1)


def _same_store(a: EmbeddingStore, b: EmbeddingStore) -> None:
    assert a.fingerprint == b.fingerprint and a.manifest == b.manifest
    assert np.array_equal(np.asarray(a.embeddings), np.asarray(b.embeddings))
    pd.testing.assert_frame_equal(a.metadata(), b.metadata())


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> EmbeddingStore:
    """200 sentences in shards of 25, one process, the default (auto) precision."""
    return build_store(
        wiki_source(**SOURCE),
        Embedder(shard_size=25, batch_size=25, show_progress=False),
        tmp_path_factory.mktemp("ref"),
    )


def test_metadata_is_written_in_shard_row_groups_and_read_in_slices(reference):
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(reference.path / "metadata.parquet")
    assert pf.num_row_groups == 8 and all(pf.metadata.row_group(g).num_rows == 25 for g in range(8))
    whole = reference.metadata()
    rows = [199, 3, 57, 3, 120]
    got = reference.metadata_rows(rows, columns=["text", "domain"])
    assert got.index.tolist() == rows
    assert got["text"].tolist() == whole["text"].iloc[rows].tolist()
    assert got["domain"].tolist() == whole["domain"].iloc[rows].tolist()
    parts = list(reference.iter_metadata(columns=["id"], batch_rows=60))
    assert [len(p) for p in parts] == [60, 60, 60, 20] and parts[-1].index[0] == 180
    assert pd.concat(parts)["id"].tolist() == whole["id"].tolist()
    with pytest.raises(IndexError):
        reference.metadata_rows([200])


def test_bfloat16_inference_is_another_store_close_to_float32(tmp_path):
    f32, bf16 = (
        build_store(
            wiki_source(**SOURCE),
            Embedder(shard_size=25, batch_size=25, dtype_compute=d, show_progress=False),
            tmp_path,
        )
        for d in ("float32", "bfloat16")
    )
    assert bf16.fingerprint != f32.fingerprint and bf16.manifest["embedder"]["dtype_compute"] == "bfloat16"
    assert "dtype_compute" not in f32.manifest["embedder"]  # float32 stores keep their old fingerprint
    a, b = np.asarray(f32.embeddings), np.asarray(bf16.embeddings)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.98 and not np.array_equal(a, b)
    # Labelling embeds its phrases with the store's model in the store's precision, cached apart;
    # a float32 store keeps the phrase-cache folder it had before, and the judge stays float32.
    import torch

    from sae_lightning.labels.naming.phrase_cache import cache_folder, model_and_cache

    (m32, c32), (m16, c16) = model_and_cache(f32), model_and_cache(bf16)
    assert next(m32.parameters()).dtype == torch.float32 and next(m16.parameters()).dtype == torch.bfloat16
    assert c32.folder == cache_folder(f32.path, f32.model_name, m32.max_seq_length)
    assert c16.folder.name != cache_folder(bf16.path, bf16.model_name, m16.max_seq_length).name
    phrase = c16.get(["prime numbers"])
    assert phrase.dtype == np.float32 and phrase.shape == (1, bf16.dim)
    judge, _ = model_and_cache(bf16, "default")
    assert next(judge.parameters()).dtype == torch.float32


def test_auto_is_bfloat16_exactly_where_the_hardware_has_it():
    import torch

    from sae_lightning.data.embed import native_bf16, resolve_compute_dtype

    assert native_bf16("cpu", {"avx512_bf16": True}) and native_bf16("cpu", {"amx_bf16": True})
    assert not native_bf16("cpu", {"avx512_bf16": False, "amx_bf16": False, "avx2": True})
    caps = torch.cpu.get_capabilities()
    here = "bfloat16" if caps.get("avx512_bf16") or caps.get("amx_bf16") else "float32"
    assert resolve_compute_dtype("auto", ["cpu"]) == here == Embedder(device="cpu").compute_dtype
    assert resolve_compute_dtype("auto", ["cpu", "cpu"]) == here
    if not torch.cuda.is_available():  # a GPU that is not there has no bf16: auto falls back to float32
        assert resolve_compute_dtype("auto", ["cpu", "cuda:0"]) == "float32"
    for explicit in ("float32", "bfloat16", "float16"):
        assert Embedder(dtype_compute=explicit, device="cpu").compute_dtype == explicit
    options = Embedder(device="cpu").options()  # the resolved dtype keys the store, never "auto"
    assert options.get("dtype_compute", "float32") == here


def test_float16_inference_on_cpu_is_refused_in_one_line(tmp_path):
    with pytest.raises(
        SourceError, match=r"^embedder.dtype_compute=float16 needs a GPU .* use embedder.dtype_compute=bfloat16"
    ):
        build_store(
            wiki_source(**SOURCE), Embedder(dtype_compute="float16", device="cpu", show_progress=False), tmp_path
        )
    assert not list((tmp_path / "stores").glob("*/manifest.json"))


def test_two_worker_pool_gives_the_single_process_store(reference, tmp_path):
    pooled = build_store(
        wiki_source(**SOURCE),
        Embedder(shard_size=25, batch_size=25, devices=["cpu", "cpu"], show_progress=False),
        tmp_path,
    )
    _same_store(reference, pooled)


def _embed_cmd(cache: Path) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from sae_lightning.cli import embed; embed()",
        "domain=wiki_all",
        "domain.topics=[Mathematics,Arts]",
        "domain.limit=200",
        "domain.seed=1",
        "embedder.shard_size=25",
        "embedder.batch_size=25",
        f"paths.cache_dir={cache}",
        f"paths.log_dir={cache / 'logs'}",
        "embedder.show_progress=false",
    ]


def test_two_concurrent_sae_embed_share_the_shards_and_make_the_same_store(reference, tmp_path):
    """Two processes on one store, as two tasks of a SLURM array would: each shard is embedded by
    exactly one of them, and the finished store equals the single-process one."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    procs = [
        subprocess.Popen(_embed_cmd(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    done = [int(m) for out in outs for m in re.findall(r"this process embedded (\d+) of the store's 8 shards", out)]
    assert len(done) == 2 and sum(done) == 8, outs
    (path,) = [p for p in (tmp_path / "stores").iterdir() if p.is_dir()]
    _same_store(reference, EmbeddingStore(path))
    assert not (path / "claims").exists() and not (path / "shards").exists()
