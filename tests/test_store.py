"""The embedding store: real model, fingerprinted reuse, kill -9 resume, and corrupt stores."""

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

from sae_lightning.data.embed import Embedder, build_store
from sae_lightning.data.sources import NpyEmbeddings, SourceError
from sae_lightning.data.store import EmbeddingStore, StoreError
from sae_lightning.errors import UserError
from sae_lightning.schemas.domain import NpyConfig

from .conftest import wiki_source


def test_small_store_is_finite_384_wide_one_row_per_text(small_store):
    emb = small_store.embeddings
    meta = small_store.metadata()
    assert emb.shape == (600, 384) and isinstance(emb, np.memmap)
    assert np.isfinite(emb).all()
    assert list(meta.columns) == ["id", "text", "domain"] and len(meta) == 600
    assert small_store.manifest["complete"] and small_store.model_name == "sentence-transformers/all-MiniLM-L6-v2"
    assert not (small_store.path / "shards").exists()


def test_same_fingerprint_embeds_nothing(small_store, cache_dir, monkeypatch):
    def refuse(*_, **__):
        raise AssertionError("a complete store must not be embedded again")

    monkeypatch.setattr(Embedder, "encode", refuse)
    again = build_store(
        wiki_source(topics=["Mathematics", "History", "Arts"], limit=600, seed=0),
        Embedder(show_progress=False),
        cache_dir,
    )
    assert again.path == small_store.path


def test_options_change_the_fingerprint(cache_dir, small_store):
    source = wiki_source(topics=["Mathematics", "History", "Arts"], limit=600, seed=0)
    half = build_store(source, Embedder(dtype="float16", normalize=True, show_progress=False), cache_dir)
    assert half.path != small_store.path
    assert half.embeddings.dtype == np.float16
    norms = np.linalg.norm(np.asarray(half.embeddings, dtype=np.float32), axis=1)
    assert np.allclose(norms, 1.0, atol=2e-3)


def _embed_cmd(cache: Path, log_dir: Path, shard_size: int = 25) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from sae_lightning.cli import embed; embed()",
        "domain=wiki_mathematics",
        "domain.limit=400",
        f"embedder.shard_size={shard_size}",
        "embedder.batch_size=25",
        f"paths.cache_dir={cache}",
        f"paths.log_dir={log_dir}",
        "embedder.show_progress=false",
    ]


def _store_dirs(cache: Path) -> list[Path]:
    return [p for p in (cache / "stores").iterdir() if p.is_dir()]


@pytest.mark.parametrize("shard_size", [25, 40])
def test_killed_run_resumes_to_the_same_store(shard_size, tmp_path):
    """kill -9 half way, start again: the store equals an uninterrupted one, and the restart embeds
    only the shards that were missing. A restart with another embedder.shard_size (which does not
    key the store) goes on in the layout on disk: it deleted the half-written store as stale, and
    so pulled the shards from under a process still embedding it, which failed at its end."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    whole = subprocess.run(_embed_cmd(tmp_path / "a", tmp_path / "logs"), env=env, capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr
    (ref_dir,) = _store_dirs(tmp_path / "a")

    proc = subprocess.Popen(
        _embed_cmd(tmp_path / "b", tmp_path / "logs"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 120
    shards = []
    while time.time() < deadline and len(shards) < 6:
        shards = list((tmp_path / "b").glob("stores/*/shards/shard_*.npy"))
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 6 <= len(shards) < 16, "the kill should land half way through the 16 shards"
    (part_dir,) = _store_dirs(tmp_path / "b")
    with pytest.raises(StoreError, match="incomplete"):
        EmbeddingStore(part_dir)

    resumed = subprocess.run(
        _embed_cmd(tmp_path / "b", tmp_path / "logs", shard_size), env=env, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    log = resumed.stdout + resumed.stderr
    assert "of 16 shards to do" in log and "(16 of 16" not in log
    ref, got = EmbeddingStore(ref_dir), EmbeddingStore(part_dir)
    assert np.array_equal(np.asarray(ref.embeddings), np.asarray(got.embeddings))
    pd.testing.assert_frame_equal(ref.metadata(), got.metadata())
    assert ref.manifest == got.manifest


def _copy_store(store: EmbeddingStore, dest: Path) -> Path:
    import shutil

    shutil.copytree(store.path, dest)
    return dest


def test_truncated_or_mismatched_store_is_refused(small_store, tmp_path):
    cut = _copy_store(small_store, tmp_path / "cut")
    data = (cut / "embeddings.npy").read_bytes()
    (cut / "embeddings.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError, match="embeddings.npy is truncated or corrupt"):
        EmbeddingStore(cut)

    wide = _copy_store(small_store, tmp_path / "wide")
    manifest = json.loads((wide / "manifest.json").read_text())
    (wide / "manifest.json").write_text(json.dumps({**manifest, "dim": 768}))
    with pytest.raises(StoreError, match=r"manifest says float32 \(600, 768\)"):
        EmbeddingStore(wide)

    meta = _copy_store(small_store, tmp_path / "meta")
    pd.read_parquet(meta / "metadata.parquet").iloc[:10].to_parquet(meta / "metadata.parquet")
    with pytest.raises(StoreError, match="has 10 rows but the store has 600"):
        EmbeddingStore(meta)

    with pytest.raises(StoreError, match="not an embedding store"):
        EmbeddingStore(tmp_path)

    empty = _copy_store(small_store, tmp_path / "empty")  # a copy cut at its first byte: was EOFError's traceback
    (empty / "embeddings.npy").write_bytes(b"")
    with pytest.raises(StoreError, match=r"embeddings.npy is truncated or corrupt \(No data left in file\)"):
        EmbeddingStore(empty)


def test_a_cache_whose_stores_folder_takes_no_files_is_one_line(tmp_path):
    """The cache writable (checked before Hydra) but its stores/ not: the store's lock file was a
    PermissionError traceback."""
    from .test_run_safety import unwritable

    (tmp_path / "stores").mkdir(parents=True)
    np.save(tmp_path / "x.npy", np.ones((20, 4), np.float32))
    with unwritable(tmp_path / "stores"), pytest.raises(UserError, match=r"^cannot create .*\.lock \(") as err:
        build_store(NpyEmbeddings(NpyConfig(path=str(tmp_path / "x.npy"))), Embedder(show_progress=False), tmp_path)
    assert str(err.value).endswith("set paths.cache_dir to a folder you can write")
    assert list((tmp_path / "stores").iterdir()) == []


def test_npy_source_becomes_a_store(tmp_path, cache_dir):
    arr = np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", arr)
    store = build_store(
        NpyEmbeddings(NpyConfig(path=str(tmp_path / "x.npy"), domain="synthetic")),
        Embedder(show_progress=False, shard_size=64),
        cache_dir,
    )
    assert np.array_equal(np.asarray(store.embeddings), arr)
    assert set(store.metadata()["domain"]) == {"synthetic"}


def test_npy_with_nan_is_refused_and_leaves_nothing(tmp_path):
    arr = np.ones((100, 4), np.float32)
    arr[57, 2] = np.nan
    np.save(tmp_path / "x.npy", arr)
    with pytest.raises(SourceError, match="NaN or Inf .*row 57"):
        build_store(
            NpyEmbeddings(NpyConfig(path=str(tmp_path / "x.npy"))),
            Embedder(show_progress=False, shard_size=32),
            tmp_path / "cache",
        )
    assert not any((tmp_path / "cache" / "stores").glob("*/manifest.json"))


def test_npy_with_values_no_embedding_holds_is_refused_and_leaves_nothing(tmp_path):
    """A value of 1e30 made a store, then an SAE that diverged at its first step; the store stayed."""
    arr = np.ones((100, 4), np.float32)
    arr[70, 1] = -1e30
    np.save(tmp_path / "x.npy", arr)
    with pytest.raises(SourceError, match=r"holds a value beyond \+-1e\+06 \(first at row 70\); clean the"):
        build_store(
            NpyEmbeddings(NpyConfig(path=str(tmp_path / "x.npy"))),
            Embedder(show_progress=False, shard_size=32),
            tmp_path / "cache",
        )
    assert not any((tmp_path / "cache" / "stores").glob("*/manifest.json"))


def test_model_path_that_is_not_a_sentence_transformer(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    with pytest.raises(SourceError, match="not a sentence-transformers model folder"):
        build_store(wiki_source(topics=["Arts"], limit=10), Embedder(model=str(tmp_path / "model")), tmp_path)


def test_npy_store_follows_the_metadata_content_and_the_model_name(tmp_path):
    """Edited metadata (same path) or another domain.model_name make a new store, never the stale one."""
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32))
    meta = tmp_path / "meta.csv"
    meta.write_text("text\n" + "".join(f"old text {i}\n" for i in range(40)))

    def store(**extra):
        return build_store(
            NpyEmbeddings(NpyConfig(path=str(tmp_path / "x.npy"), metadata=str(meta), **extra)),
            Embedder(show_progress=False),
            tmp_path / "cache",
        )

    first = store()
    meta.write_text("text\n" + "".join(f"new text {i}\n" for i in range(40)))
    edited = store()
    assert edited.path != first.path and edited.metadata()["text"][0] == "new text 0"
    renamed = store(model_name="my-model")
    assert renamed.path != edited.path and renamed.model_name == "my-model"


def test_full_disk_is_one_line_and_leaves_no_temp_file_and_no_complete_store(tiny_disk, tmp_path):
    # 3,000 x 64 float32 = 750 KiB: the shards fit, the finished embeddings.npy beside them does not.
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(3000, 64)).astype(np.float32))
    with pytest.raises(UserError, match=r"^disk full while writing .*embeddings.npy .*free space on"):
        build_store(
            NpyEmbeddings(NpyConfig(path=str(tmp_path / "x.npy"))),
            Embedder(show_progress=False, shard_size=1000),
            tiny_disk,
        )
    (store,) = _store_dirs(tiny_disk)
    assert not list(store.rglob("*.tmp*")), "a temp file keeps the disk full"
    assert not json.loads((store / "manifest.json").read_text())["complete"]
    with pytest.raises(StoreError, match="incomplete"):
        EmbeddingStore(store)
