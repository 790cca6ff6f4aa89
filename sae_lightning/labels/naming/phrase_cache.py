"""Embeddings of candidate keywords (and label strings), kept with the embedding store.

A phrase's embedding depends only on the phrase and the model, so the cache is keyed by the model
and looked up phrase by phrase: relabelling a run, labelling another SAE of the same store or
changing the vectorizer settings embeds only phrases never seen before. Layout:

    <store>/keybert/<sha of model, max_seq_length, dtype>/phrases.parquet   column "phrase"
                                                         embeddings.npy    float32 [n, dim], same order

Both files are replaced through the run folder's atomic writer under the store's file lock, and a writer
merges what is on disk first, so concurrent runs (multirun, DDP ranks) never lose each other's work.
A read-only store still works: the new embeddings are then kept in memory only.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ...atomic import atomic_write
from ...data.embed import MODEL_SETTING, load_model, resolve_model
from ...data.store import store_lock
from ...errors import UserError

log = logging.getLogger(__name__)


def cache_folder(store_path: Path, model_name: str, max_seq_length: int | None, dtype_compute: str = "float32") -> Path:
    key = {"model": model_name, "max_seq_length": max_seq_length, "format": 1}
    if dtype_compute != "float32":  # float32 caches keep the folder they had before the knob existed
        key["dtype_compute"] = dtype_compute
    return Path(store_path) / "keybert" / hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


NAMED_MODEL_DTYPE = "float32"  # a model named apart from the store's (the judge) runs in float32


def load_named_model(model_name: str, setting: str = MODEL_SETTING):
    """A model named apart from the store's, as model_and_cache loads it (cached per process);
    `setting` is the setting that named it, for the error where it cannot be loaded."""
    return load_model(model_name, None, NAMED_MODEL_DTYPE, setting)


# Batches of 256: sentence-transformers sorts a call's inputs by length, so a batch pads to its longest;
# at 1024 the first batches of masked top texts padded short sentences to the longest ones, and a
# first labelling of the default run took 160-182 s against 148-159 s at 256 (benchmarks/RESULTS.md).
EMBED_BATCH = 256


def model_and_cache(store, model_name: str | None = None, batch_size: int = EMBED_BATCH, setting: str = MODEL_SETTING):
    """A sentence-transformers model and the store's cache of its phrase embeddings.

    Without `model_name`: the store's own model in the precision its texts were embedded in, so
    keywords, labels and the store's texts are embeddings of one kind (`dtype_compute=auto` made
    the store in bfloat16 on a bf16 CPU). A named model (the judge): load_named_model's."""
    if model_name is None:
        key, dtype = store.model_name, store.compute_dtype
        model = load_model(store.model_name, None, dtype)
    else:  # keyed by what the name resolves to: `all-mpnet-base-v2` and its assembled folder are one model
        key, dtype = resolve_model(model_name, setting), NAMED_MODEL_DTYPE
        model = load_named_model(model_name, setting)

    def embed(phrases: list[str]) -> np.ndarray:
        out = model.encode(phrases, batch_size=batch_size, convert_to_tensor=True, show_progress_bar=False)
        return out.float().cpu().numpy()

    return model, PhraseEmbeddingCache(
        cache_folder(store.path, key, getattr(model, "max_seq_length", None), dtype), embed, key
    )


# A first labelling of a store (or a first judge) embeds tens of thousands of phrases and texts:
# minutes on CPU with nothing else in the log. From this many, a line says what the wait is.
ANNOUNCE_FROM = 1000


class PhraseEmbeddingCache:
    def __init__(self, folder: Path, embed: Callable[[list[str]], np.ndarray], model_name: str) -> None:
        self.folder, self.embed, self.model_name = Path(folder), embed, model_name
        self.phrases: list[str] = []
        self.index: dict[str, int] = {}
        self.vectors = np.zeros((0, 0), dtype=np.float32)
        self.n_embedded = 0  # phrases this object had to embed (what a warm cache saves)
        self._load()

    def _load(self) -> None:
        found = _read(self.folder)
        if found is not None:
            self.phrases, self.vectors = found
            self.index = {p: i for i, p in enumerate(self.phrases)}

    def get(self, phrases: list[str]) -> np.ndarray:
        """[len(phrases), dim] float32 in the order asked, embedding only the unseen ones."""
        missing = list(dict.fromkeys(p for p in phrases if p not in self.index))
        if len(missing) >= ANNOUNCE_FROM:
            log.info(
                "embedding %d phrases and texts with %s that no labelling of this store has embedded "
                "yet (kept in %s: later labellings reuse them)",
                len(missing),
                self.model_name,
                self.folder,
            )
        if missing:
            new = np.asarray(self.embed(missing), dtype=np.float32)
            self.n_embedded += len(missing)
            self._add(missing, new)
            self._save()
        if not phrases:
            return np.zeros((0, self.vectors.shape[1] if self.vectors.size else 0), dtype=np.float32)
        return self.vectors[[self.index[p] for p in phrases]]

    def _add(self, phrases: list[str], vectors: np.ndarray) -> None:
        keep = [i for i, p in enumerate(phrases) if p not in self.index]
        base = len(self.phrases)
        self.phrases.extend(phrases[i] for i in keep)
        self.index.update({phrases[i]: base + j for j, i in enumerate(keep)})
        self.vectors = vectors[keep] if not self.vectors.size else np.concatenate([self.vectors, vectors[keep]])

    def _save(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with store_lock(self.folder / "phrases"):
                found = _read(self.folder)  # what other runs wrote since we loaded
                if found is not None and found[1].shape[1:] == self.vectors.shape[1:]:
                    others = [i for i, p in enumerate(found[0]) if p not in self.index]
                    if others:
                        self._add([found[0][i] for i in others], found[1][others])
                # Embeddings first: a reader that sees the new phrase list also sees its vectors;
                # one that catches the pair mid-swap finds a length mismatch and ignores the cache.
                atomic_write(self.folder / "embeddings.npy", lambda tmp: np.save(tmp, self.vectors))
                phrases = pd.DataFrame({"phrase": self.phrases})
                atomic_write(self.folder / "phrases.parquet", lambda tmp: phrases.to_parquet(tmp, index=False))
        except (OSError, UserError) as err:  # a cache: a full or read-only disk costs speed, not the run
            log.warning("cannot write the phrase cache %s (%s); embeddings kept in memory only", self.folder, err)


def _read(folder: Path) -> tuple[list[str], np.ndarray] | None:
    try:
        phrases = pd.read_parquet(folder / "phrases.parquet")["phrase"].tolist()
        vectors = np.load(folder / "embeddings.npy")
    except (OSError, ValueError, KeyError):
        return None  # no cache yet (or a broken one, which the next write replaces)
    if len(phrases) != len(vectors):
        log.warning("phrase cache %s is inconsistent; it will be rebuilt", folder)
        return None
    return phrases, vectors
