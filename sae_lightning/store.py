"""The embedding store: written once per fingerprint in shards, read many times as a memory map.

Layout of `<cache_dir>/stores/<fingerprint>/`:
    manifest.json      model_name, dim, count, dtype, normalized, fingerprint, source, complete
    embeddings.npy     (count, dim) float32/float16, memory-mappable
    metadata.parquet   id, text, domain (one row per embedding, same order)
    shards/            only while writing: shard_00000.npy ... (what lets a killed run resume)
The manifest's `complete` flag is written last, so a store without it is never read as whole.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from .errors import UserError
from .run_dir import atomic_write, write_json

FORMAT_VERSION = 1


class StoreError(UserError):
    """A store that cannot be read as it claims to be: the message names the file and the fix."""


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sae-lightning"



@contextlib.contextmanager
def store_lock(path: Path) -> Iterator[None]:
    """One writer per store: DDP ranks and multirun jobs building the same store wait on it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_manifest(path: Path) -> dict:
    """<store>/manifest.json as a dict; StoreError naming the file and the fix when it is not one."""
    file, fix = path / "manifest.json", f"delete {path} and run `sae-embed` again"
    try:
        manifest = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise StoreError(f"{file} is corrupt ({err}); {fix}") from None
    if not isinstance(manifest, dict):
        raise StoreError(f"{file} holds a JSON {type(manifest).__name__}, not an object; {fix}")
    missing = [k for k in ("count", "dim", "dtype", "model_name", "fingerprint") if k not in manifest]
    if manifest.get("complete") and missing:
        raise StoreError(f"{file} lacks {', '.join(missing)}; {fix}")
    return manifest


class EmbeddingStore:
    """A finished store. `embeddings` is a read-only memory map; nothing is loaded until indexed."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        manifest_file = self.path / "manifest.json"
        if not manifest_file.is_file():
            raise StoreError(f"{self.path} is not an embedding store (no manifest.json); run `sae-embed` to build it")
        self.manifest = read_manifest(self.path)
        if not self.manifest.get("complete"):
            raise StoreError(f"{self.path} is incomplete (embedding was interrupted); run `sae-embed` again to resume it")
        self._check_files()
        self._metadata: pd.DataFrame | None = None

    def _check_files(self) -> None:
        emb_file, meta_file = self.path / "embeddings.npy", self.path / "metadata.parquet"
        hint = f"delete {self.path} and run `sae-embed` again"
        try:
            arr = np.load(emb_file, mmap_mode="r")
        except FileNotFoundError as err:
            raise StoreError(f"{emb_file} is missing; {hint}") from err
        except ValueError as err:  # numpy says so when the file is shorter than its header claims
            raise StoreError(f"{emb_file} is truncated or corrupt ({err}); {hint}") from err
        want = (self.manifest["count"], self.manifest["dim"])
        if arr.shape != want or arr.dtype != np.dtype(self.manifest["dtype"]):
            raise StoreError(f"{emb_file} holds {arr.dtype} {arr.shape} but the manifest says {self.manifest['dtype']} {want}; {hint}")
        try:
            rows = pq.read_metadata(meta_file).num_rows
        except (OSError, Exception) as err:
            raise StoreError(f"{meta_file} is missing or corrupt ({str(err).splitlines()[0]}); {hint}") from err
        if rows != want[0]:
            raise StoreError(f"{meta_file} has {rows} rows but the store has {want[0]} embeddings; {hint}")
        self.embeddings: np.memmap = arr

    def __len__(self) -> int:
        return int(self.manifest["count"])

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def model_name(self) -> str:
        return str(self.manifest["model_name"])

    @property
    def fingerprint(self) -> str:
        return str(self.manifest["fingerprint"])

    def metadata(self) -> pd.DataFrame:
        """id, text, domain per row (read once, then cached)."""
        if self._metadata is None:
            self._metadata = pd.read_parquet(self.path / "metadata.parquet")
        return self._metadata

    def __repr__(self) -> str:
        return f"EmbeddingStore({self.path}, count={len(self)}, dim={self.dim}, model={self.model_name})"


class StoreWriter:
    """Writes a store shard by shard. Shards already on disk from an interrupted run are kept, so
    a restart embeds only what is missing; the finished store is the same either way."""

    def __init__(self, path: Path, manifest: dict, shard_size: int) -> None:
        self.path, self.shard_size = Path(path), int(shard_size)
        self.manifest = {**manifest, "format_version": FORMAT_VERSION, "shard_size": self.shard_size, "complete": False}
        self.shards = self.path / "shards"
        old = self._partial_manifest()
        stale = old is not None and any(old.get(k) != self.manifest.get(k) for k in ("fingerprint", "count", "dim", "dtype", "shard_size"))
        if stale:  # a different layout under the same name cannot be resumed
            shutil.rmtree(self.path)
        self.shards.mkdir(parents=True, exist_ok=True)
        write_json(self.path / "manifest.json", self.manifest)

    def _partial_manifest(self) -> dict | None:
        try:
            return json.loads((self.path / "manifest.json").read_text())
        except (OSError, json.JSONDecodeError):
            return None

    @property
    def n_shards(self) -> int:
        return -(-self.manifest["count"] // self.shard_size)

    def shard_rows(self, i: int) -> slice:
        return slice(i * self.shard_size, min((i + 1) * self.shard_size, self.manifest["count"]))

    def _shard_file(self, i: int) -> Path:
        return self.shards / f"shard_{i:05d}.npy"

    def missing_shards(self) -> list[int]:
        done = []
        for i in range(self.n_shards):
            f = self._shard_file(i)
            rows = self.shard_rows(i)
            try:
                ok = np.load(f, mmap_mode="r").shape == (rows.stop - rows.start, self.manifest["dim"])
            except (OSError, ValueError):
                ok = False
            if not ok:
                done.append(i)
        return done

    def write_shard(self, i: int, block: np.ndarray) -> None:
        rows = self.shard_rows(i)
        if block.shape != (rows.stop - rows.start, self.manifest["dim"]):
            raise StoreError(f"shard {i} has shape {block.shape}, expected {(rows.stop - rows.start, self.manifest['dim'])}")
        if not np.isfinite(block).all():
            raise StoreError(f"shard {i} (rows {rows.start}-{rows.stop}) holds NaN or Inf embeddings; check the model and inputs")
        block = block.astype(self.manifest["dtype"], copy=False)
        atomic_write(self._shard_file(i), lambda tmp: np.save(tmp, block))

    def finalize(self, metadata: pd.DataFrame) -> EmbeddingStore:
        if self.missing_shards():
            raise StoreError(f"{self.path}: cannot finalize, shards {self.missing_shards()[:5]} are missing")
        count, dim = self.manifest["count"], self.manifest["dim"]
        if len(metadata) != count:
            raise StoreError(f"metadata has {len(metadata)} rows, store has {count}")

        dtype = np.dtype(self.manifest["dtype"])

        def write_embeddings(tmp: Path) -> None:
            # Plain writes, shard after shard: through a memory map a full disk is a SIGBUS, not an error.
            header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (count, dim)}
            with open(tmp, "wb") as fh:
                np.lib.format.write_array_header_1_0(fh, header)
                for i in range(self.n_shards):
                    fh.write(np.ascontiguousarray(np.load(self._shard_file(i)), dtype=dtype).tobytes())

        atomic_write(self.path / "embeddings.npy", write_embeddings)
        meta = metadata[["id", "text", "domain"]].reset_index(drop=True)
        atomic_write(self.path / "metadata.parquet", lambda p: meta.to_parquet(p, index=False))
        write_json(self.path / "manifest.json", {**self.manifest, "complete": True})
        shutil.rmtree(self.shards, ignore_errors=True)
        return EmbeddingStore(self.path)
