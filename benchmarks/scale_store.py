"""A synthetic-but-realistic store of any size for the scale benchmarks (bench_posttrain.py, and
bench_scale.py may import it): real wiki sentences resampled to `n` texts, each with the real
MiniLM embedding of its sentence plus small seeded noise, so rows differ but keep the geometry
of real text (topics, near-duplicates, domains).

    from scale_store import scale_store
    store = scale_store(100_000, cache_dir)      # <cache_dir>/scale_stores/n100000_d4000_s0/

Only the distinct sentences (`n_distinct`, a few thousand) are embedded, once, through the project's
own build_store (cached); the big store is written through the project's StoreWriter, shard by
shard, so RAM stays at one shard of embeddings plus the metadata. A copy of a sentence keeps its
article (ids `<title>#<sentence>.<copy>`), so per-document rules (coherence, support) see
resampled copies as sentences of the same article, as they would be in a real corpus.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SHARD = 50_000  # rows per written shard: bounds the builder's RAM


def distinct_store(cache_dir: Path, n_distinct: int = 4000, seed: int = 0):
    """The real store of `n_distinct` wiki sentences over every topic, embedded by the default model."""
    from common import wiki_all_source

    from sae_lightning.data.embed import Embedder, build_store

    source = wiki_all_source(limit=n_distinct, seed=seed)
    return build_store(source, Embedder(show_progress=False), cache_dir)


def scale_store(n: int, cache_dir: str | Path, n_distinct: int = 4000, noise: float = 0.004, seed: int = 0):
    """An EmbeddingStore of `n` rows (built once per (n, n_distinct, seed), then reused)."""
    from sae_lightning.data.store import EmbeddingStore, StoreWriter, read_manifest

    cache_dir = Path(cache_dir).expanduser()
    path = cache_dir / "scale_stores" / f"n{n}_d{n_distinct}_s{seed}"
    if (path / "manifest.json").is_file() and read_manifest(path).get("complete"):
        return EmbeddingStore(path)
    base = distinct_store(cache_dir, n_distinct, seed)
    meta = base.metadata()
    emb = np.asarray(base.embeddings, dtype=np.float32)
    rng = np.random.default_rng(seed)
    pick = rng.integers(len(base), size=n)  # which sentence each row copies
    copy = np.zeros(n, dtype=np.int64)  # the how-many-th copy of its sentence
    order = np.argsort(pick, kind="stable")
    starts = np.r_[0, np.flatnonzero(np.diff(pick[order])) + 1]
    copy[order] = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    writer = StoreWriter(
        path,
        {
            "fingerprint": f"scale-{n}-{n_distinct}-{seed}-{base.fingerprint}",
            "model_name": base.model_name,
            "dim": base.dim,
            "count": int(n),
            "dtype": str(base.embeddings.dtype),
            "normalized": True,
            "source": f"{n} resampled from {len(base)} wiki sentences (benchmarks/scale_store.py)",
            "domains": sorted(set(meta["domain"])),
        },
        SHARD,
    )
    for i in writer.missing_shards():
        rows = writer.shard_rows(i)
        x = emb[pick[rows]] + rng.standard_normal((rows.stop - rows.start, base.dim)).astype(np.float32) * noise
        writer.write_shard(i, x / np.linalg.norm(x, axis=1, keepdims=True))
    ids = meta["id"].to_numpy(dtype=object)[pick]
    store = writer.finalize(
        pd.DataFrame(
            {
                "id": [f"{i}.{c}" for i, c in zip(ids, copy)],
                "text": meta["text"].to_numpy(dtype=object)[pick],
                "domain": meta["domain"].to_numpy(dtype=object)[pick],
            }
        )
    )
    share_phrase_caches(path)
    return store


def share_phrase_caches(path: Path) -> None:
    """Copy the phrase-embedding caches of the sibling scale stores into a new one: the phrases are
    the same few thousand sentences' n-grams, and embedding them again (minutes on 2 cores) is a
    model cost that does not depend on the store's size. The train-counts caches are not copied."""
    import shutil

    for sibling in sorted(path.parent.glob("*/keybert")):
        for folder in sibling.iterdir():
            target = path / "keybert" / folder.name
            if folder.name != "counts" and folder.is_dir() and not target.exists() and sibling.parent != path:
                shutil.copytree(folder, target)
