"""The embedding store: written once per fingerprint in shards, read many times as a memory map.

Layout of `<cache_dir>/stores/<fingerprint>/`:
    manifest.json      model_name, dim, count, dtype, normalized, fingerprint, source, complete
    embeddings.npy     (count, dim) float32/float16, memory-mappable
    metadata.parquet   id, text, domain (one row per embedding, same order; row group i = shard i)
    shards/            only while writing: shard_00000.npy ... (what lets a killed run resume)
    claims             only while writing: byte i locked by the process embedding shard i
The manifest's `complete` flag is written last, so a store without it is never read as whole.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from ..atomic import atomic_write, creating, read_json, write_json
from ..errors import UserError
from ..path_checks import check_readable
from .shard_claims import ShardClaims
from .store_meta import iter_metadata, read_row_group, read_rows

FORMAT_VERSION = 1
# Sentence embeddings are of order one: a unit vector's values are at most 1, a raw model's a few
# units. Values beyond this are no embeddings of texts (a wrong array, or one scaled by mistake); an
# SAE trained on them diverged at its first step, after a store of them had been made.
MAX_ABS = 1e6


def first_bad_row(block: np.ndarray, max_abs: float = MAX_ABS) -> tuple[int, str] | None:
    """The first row of `block` holding NaN, Inf or a value beyond +-max_abs, and what it holds
    (max_abs inf: NaN and Inf only, for a query, whose cosine does not depend on its scale)."""
    ok = np.isfinite(block) & (np.abs(block) <= max_abs)
    if ok.all():
        return None
    row = int(np.flatnonzero(~ok.all(axis=1))[0])
    return row, ("NaN or Inf" if not np.isfinite(block[row]).all() else f"a value beyond +-{max_abs:g}")


# The store's files, named in the layout above
MANIFEST, EMBEDDINGS, METADATA = "manifest.json", "embeddings.npy", "metadata.parquet"
SHARDS, CLAIMS = "shards", "claims"  # only while writing
STORES = "stores"  # <cache_dir>/stores/<fingerprint>/: every store of a cache


def store_cache_of(folder: Path) -> Path | None:
    """The store, or the cache's stores/ folder, that `folder` is (or is inside): a cache's
    folders are whole stores, deleted and rebuilt at will, so nothing else belongs in them."""
    for p in (folder, *folder.parents):
        if (p / MANIFEST).is_file() and (p / METADATA).is_file():
            return p
        if p.name == STORES and p.is_dir() and any((c / MANIFEST).is_file() for c in p.iterdir() if c.is_dir()):
            return p
    return None


class StoreError(UserError):
    """A store that cannot be read as it claims to be: the message names the file and the fix."""


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/sae-lightning, else ~/.cache/sae-lightning: paths.cache_dir's default too (the
    `default_cache_dir` resolver). An empty XDG_CACHE_HOME counts as unset, as the XDG spec says."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sae-lightning"


@contextlib.contextmanager
def store_lock(path: Path) -> Iterator[None]:
    """One writer per store: DDP ranks and multirun jobs building the same store wait on it."""
    lock = path.with_name(path.name + ".lock")
    # the cache's stores/ read-only under a writable cache (checked before Hydra) was a traceback
    with creating(lock, f"make {path.parent} writable, or set paths.cache_dir to a folder you can write"):
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(lock, "a")  # "a": an existing lock file is never truncated; closed by the with below
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_manifest(path: Path) -> dict:
    """<store>/manifest.json as a dict; StoreError naming the file and the fix when it is not one."""
    file, fix = path / MANIFEST, f"delete {path} and run `sae-embed` again"
    manifest = read_json(file, fix, StoreError)
    missing = [k for k in ("count", "dim", "dtype", "model_name", "fingerprint") if k not in manifest]
    if manifest.get("complete") and missing:
        raise StoreError(f"{file} lacks {', '.join(missing)}; {fix}")
    return manifest


def check_store_readable(path: Path) -> None:
    """The store's folder and files can be read by this user (another user's cache, chmod 700, was
    a PermissionError traceback); StoreError naming the first that cannot."""
    fix = f"make the store readable to you (its owner can run chmod -R a+rX {path}) or build your own with sae-embed"
    try:
        check_readable([path, *(path / name for name in (MANIFEST, EMBEDDINGS, METADATA))], fix)
    except UserError as err:
        raise StoreError(str(err)) from None


class EmbeddingStore:
    """A finished store. `embeddings` is a read-only memory map; nothing is loaded until indexed."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        check_store_readable(self.path)
        manifest_file = self.path / MANIFEST
        if not manifest_file.is_file():
            raise StoreError(f"{self.path} is not an embedding store (no {MANIFEST}); run `sae-embed` to build it")
        self.manifest = read_manifest(self.path)
        if not self.manifest.get("complete"):
            raise StoreError(
                f"{self.path} is incomplete (embedding was interrupted); run `sae-embed` again to resume it"
            )
        self._check_files()
        self._metadata: pd.DataFrame | None = None

    def _check_files(self) -> None:
        emb_file, meta_file = self.path / EMBEDDINGS, self.path / METADATA
        hint = f"delete {self.path} and run `sae-embed` again"
        try:
            arr = np.load(emb_file, mmap_mode="r")
        except FileNotFoundError as err:
            raise StoreError(f"{emb_file} is missing; {hint}") from err
        except OSError as err:  # a folder in its place, no permission to read it
            raise StoreError(f"{emb_file} cannot be read ({os.strerror(err.errno or 0)}); {hint}") from err
        except (ValueError, EOFError) as err:  # shorter than its header claims, or empty (EOFError)
            raise StoreError(f"{emb_file} is truncated or corrupt ({err}); {hint}") from err
        want = (self.manifest["count"], self.manifest["dim"])
        if arr.shape != want or arr.dtype != np.dtype(self.manifest["dtype"]):
            raise StoreError(
                f"{emb_file} holds {arr.dtype} {arr.shape} but the manifest says "
                f"{self.manifest['dtype']} {want}; {hint}"
            )
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
    def compute_dtype(self) -> str:
        """The precision the model ran in while embedding the texts (embedder.dtype_compute, resolved)."""
        return str((self.manifest.get("embedder") or {}).get("dtype_compute", "float32"))

    @property
    def fingerprint(self) -> str:
        return str(self.manifest["fingerprint"])

    def metadata(self) -> pd.DataFrame:
        """id, text, domain per row, all in memory (read once, then cached). At scale prefer
        `iter_metadata` or `metadata_rows`, which read only what they return."""
        if self._metadata is None:
            self._metadata = pd.read_parquet(self.path / METADATA)
        return self._metadata

    def iter_metadata(self, columns: list[str] | None = None, batch_rows: int = 65536) -> Iterator[pd.DataFrame]:
        """The metadata in row order, `batch_rows` rows at a time, indexed by row number."""
        return iter_metadata(self.path / METADATA, columns, batch_rows)

    def metadata_rows(self, rows, columns: list[str] | None = None) -> pd.DataFrame:
        """The metadata of these row numbers (in the order given), decoding only the row groups
        that hold them; indexed by row number."""
        return read_rows(self.path / METADATA, rows, columns)

    def __repr__(self) -> str:
        return f"EmbeddingStore({self.path}, count={len(self)}, dim={self.dim}, model={self.model_name})"


def _same_store(old: dict, new: dict) -> bool:
    """A partial manifest of this very store, in another shard layout (a positive whole shard_size)."""
    size = old.get("shard_size")
    return (
        isinstance(size, int)
        and size > 0
        and all(old.get(k) == new.get(k) for k in ("fingerprint", "count", "dim", "dtype"))
    )


class StoreWriter:
    """Writes a store shard by shard. Shards already on disk from an interrupted run are kept, so
    a restart embeds only what is missing; the finished store is the same either way."""

    def __init__(self, path: Path, manifest: dict, shard_size: int) -> None:
        self.path, self.shard_size = Path(path), int(shard_size)
        self.manifest = {**manifest, "format_version": FORMAT_VERSION, "shard_size": self.shard_size, "complete": False}
        self.shards = self.path / SHARDS
        old = self._partial_manifest()
        if old is not None and (self.path / METADATA).is_file() and _same_store(old, self.manifest):
            # embedder.shard_size does not key the store: a writer with another one goes on in the
            # layout on disk (metadata's row groups are its shards). The store was deleted as stale,
            # pulling the shards from under a process still embedding it ("cannot finalize").
            self.shard_size = self.manifest["shard_size"] = int(old["shard_size"])
        stale = old is not None and any(
            old.get(k) != self.manifest.get(k) for k in ("fingerprint", "count", "dim", "dtype", "shard_size")
        )
        if stale:  # a different layout under the same name cannot be resumed
            shutil.rmtree(self.path)
        self.shards.mkdir(parents=True, exist_ok=True)
        write_json(self.path / MANIFEST, self.manifest)
        self.claims = ShardClaims(self.path / CLAIMS)

    @property
    def metadata_file(self) -> Path:
        return self.path / METADATA

    def is_complete(self) -> bool:
        """Whether another process has finished the store meanwhile."""
        return bool((self._partial_manifest() or {}).get("complete"))

    def shard_texts(self, i: int) -> list[str]:
        return read_row_group(self.metadata_file, i, ["text"])["text"].tolist()

    def _partial_manifest(self) -> dict | None:
        try:
            return json.loads((self.path / MANIFEST).read_text())
        except (OSError, json.JSONDecodeError):
            return None

    @property
    def n_shards(self) -> int:
        return -(-self.manifest["count"] // self.shard_size)

    def shard_rows(self, i: int) -> slice:
        return slice(i * self.shard_size, min((i + 1) * self.shard_size, self.manifest["count"]))

    def _shard_file(self, i: int) -> Path:
        return self.shards / f"shard_{i:05d}.npy"

    def has_shard(self, i: int) -> bool:
        rows = self.shard_rows(i)
        try:
            return np.load(self._shard_file(i), mmap_mode="r").shape == (rows.stop - rows.start, self.manifest["dim"])
        except (OSError, ValueError, EOFError):  # an empty file (EOFError) is a shard still to embed
            return False

    def missing_shards(self) -> list[int]:
        return [i for i in range(self.n_shards) if not self.has_shard(i)]

    def write_shard(self, i: int, block: np.ndarray) -> None:
        rows = self.shard_rows(i)
        if block.shape != (rows.stop - rows.start, self.manifest["dim"]):
            raise StoreError(
                f"shard {i} has shape {block.shape}, expected {(rows.stop - rows.start, self.manifest['dim'])}"
            )
        if not np.isfinite(block).all():
            raise StoreError(
                f"shard {i} (rows {rows.start}-{rows.stop}) holds NaN or Inf embeddings; check the model and inputs"
            )
        block = block.astype(self.manifest["dtype"], copy=False)
        atomic_write(self._shard_file(i), lambda tmp: np.save(tmp, block))

    def finalize(self, metadata: pd.DataFrame | None = None) -> EmbeddingStore:
        """Assemble the store from its shards (and `metadata`, unless metadata.parquet is already
        in place); the caller holds the store lock. Waits for any process still on a shard."""
        with self.claims.all_shards():
            if self.is_complete():  # another process was the last to finish
                return EmbeddingStore(self.path)
            return self._finalize(metadata)

    def _finalize(self, metadata: pd.DataFrame | None) -> EmbeddingStore:
        if self.missing_shards():
            raise StoreError(f"{self.path}: cannot finalize, shards {self.missing_shards()[:5]} are missing")
        count, dim = self.manifest["count"], self.manifest["dim"]
        rows = len(metadata) if metadata is not None else pq.read_metadata(self.metadata_file).num_rows
        if rows != count:
            raise StoreError(f"metadata has {rows} rows, store has {count}")

        dtype = np.dtype(self.manifest["dtype"])

        def write_embeddings(tmp: Path) -> None:
            # Plain writes, shard after shard: through a memory map a full disk is a SIGBUS, not an error.
            header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (count, dim)}
            with open(tmp, "wb") as fh:
                np.lib.format.write_array_header_1_0(fh, header)
                for i in range(self.n_shards):
                    fh.write(np.ascontiguousarray(np.load(self._shard_file(i)), dtype=dtype).tobytes())

        atomic_write(self.path / EMBEDDINGS, write_embeddings)
        if metadata is not None:
            meta = metadata[["id", "text", "domain"]].reset_index(drop=True)
            atomic_write(self.metadata_file, lambda p: meta.to_parquet(p, index=False))
        write_json(self.path / MANIFEST, {**self.manifest, "complete": True})
        shutil.rmtree(self.shards, ignore_errors=True)
        (self.path / CLAIMS).unlink(missing_ok=True)
        return EmbeddingStore(self.path)
