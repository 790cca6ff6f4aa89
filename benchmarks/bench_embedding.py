"""Texts/s of the embedding stage (`build_store` into a fresh cache: corpus fingerprint, sharded
encode, store files) against a bare `SentenceTransformer.encode` call on the same texts.

    python benchmarks/bench_embedding.py [--texts 3000] [--threads 1] [--dtype-texts 1000]

The texts are built-in wiki sentences spread evenly over the 11 topics (`common.wiki_all_source(limit=N)`),
the model the packaged all-MiniLM-L6-v2, loaded once before anything is timed (its load time is
reported apart). The stage runs in float32 here, like the bare call, which runs at the Embedder's
batch (32, sentence-transformers' default too) and at 128 (the Embedder's until it measured
slower), so that the gap to the stage is overhead, not settings.

Then `embedder.dtype_compute`: the same texts (`--dtype-texts`, at least 1000) encoded with float32
and bfloat16 weights, alternately, texts/s of each and the cosine of every bf16 embedding to its
float32 one (min and mean): what decides whether bf16 may be the default on this CPU.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import common  # noqa: F401
import torch
from common import load, md_table, run_and_emit, wiki_all_source


def run(args) -> dict:
    from sae_lightning.data.embed import Embedder, build_store, load_model

    args.threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(args.threads)
    source = wiki_all_source(limit=args.texts)
    texts = list(source.load().texts)
    embedder = Embedder(dtype_compute="float32", show_progress=False)
    t = time.perf_counter()
    model = load_model(embedder.model)
    load_s = time.perf_counter() - t
    model.encode(texts[:64], batch_size=32)  # warm-up: first-call allocations, tokenizer caches

    rows = []

    def record(name: str, seconds: float, note: str) -> None:
        rows.append(
            {
                "path": name,
                "texts": len(texts),
                "seconds": round(seconds, 1),
                "texts/s": len(texts) / seconds,
                "note": note,
                "load": load(),
            }
        )
        print(json.dumps(rows[-1]), flush=True)

    for _ in range(args.repeats):
        t = time.perf_counter()
        model.encode(texts, batch_size=128, convert_to_numpy=True, show_progress_bar=False)
        record("bare SentenceTransformer.encode", time.perf_counter() - t, "batch_size=128")
        t = time.perf_counter()
        model.encode(texts, batch_size=embedder.batch_size, convert_to_numpy=True, show_progress_bar=False)
        record(
            "bare SentenceTransformer.encode",
            time.perf_counter() - t,
            f"batch_size={embedder.batch_size} (the Embedder's)",
        )
        cache = Path(tempfile.mkdtemp(prefix="bench_embedding_"))
        try:
            t = time.perf_counter()
            store = build_store(source, embedder, cache)
            record(
                "embedding stage: build_store",
                time.perf_counter() - t,
                f"fresh cache; {len(store)} rows, shards of {embedder.shard_size}, fingerprint, parquet, manifest",
            )
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    dtype_rows = compare_dtypes(list(wiki_all_source(limit=args.dtype_texts).load().texts), args.repeats)
    best = {}
    for r in rows:
        key = (r["path"], r["note"])
        if key not in best or r["texts/s"] > best[key]["texts/s"]:
            best[key] = r
    stage = max(r["texts/s"] for r in rows if r["path"].startswith("embedding stage"))
    bare = max(r["texts/s"] for r in rows if r["path"].startswith("bare") and "Embedder" in r["note"])
    return {
        "rows": list(best.values()),
        "model_load_s": load_s,
        "threads": args.threads,
        "stage_vs_bare": stage / bare,
        "repeats": args.repeats,
        "dtypes": dtype_rows,
    }


def compare_dtypes(texts: list[str], repeats: int) -> list[dict]:
    """float32 vs bfloat16 inference on the same texts: speed (best of `repeats`, the two dtypes
    alternating so a busy moment hits both) and cosine fidelity to float32."""
    import numpy as np

    from sae_lightning.data.embed import Embedder

    embedders = {d: Embedder(dtype_compute=d, show_progress=False) for d in ("float32", "bfloat16")}
    for e in embedders.values():
        e.encode(texts[:64])  # load and warm up outside the timing
    best, out = {}, {}
    for _ in range(max(repeats, 2)):
        for d, e in embedders.items():
            t = time.perf_counter()
            out[d] = e.encode(texts)
            best[d] = min(best.get(d, float("inf")), time.perf_counter() - t)
    a, b = out["float32"], out["bfloat16"]
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    rows = []
    for d in embedders:
        row = {
            "dtype_compute": d,
            "texts": len(texts),
            "seconds": round(best[d], 2),
            "texts/s": len(texts) / best[d],
            "vs float32": f"{best['float32'] / best[d]:.2f}×",
            "cosine to float32 (min / mean)": "1 / 1" if d == "float32" else f"{cos.min():.4f} / {cos.mean():.4f}",
            "load": load(),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def markdown(result: dict) -> str:
    return "\n".join(
        [
            f"### Embedding: texts/s, built-in sentences, all-MiniLM-L6-v2 on CPU (torch threads {result['threads']}, "
            f"best of {result['repeats']}; model load {result['model_load_s']:.1f} s, not timed)",
            "",
            md_table(result["rows"], ["path", "note", "texts", "seconds", "texts/s", "load"]),
            "",
            f"The embedding stage runs at {result['stage_vs_bare']:.0%} of the bare encode at the same batch size.",
            "",
            "#### `embedder.dtype_compute`: float32 vs bfloat16 weights, same texts, best of the alternating repeats",
            "",
            md_table(
                result["dtypes"],
                [
                    "dtype_compute",
                    "texts",
                    "seconds",
                    "texts/s",
                    "vs float32",
                    "cosine to float32 (min / mean)",
                    "load",
                ],
            ),
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, all cores)")
    ap.add_argument("--repeats", type=int, default=2, help="each path runs this many times; the best counts")
    ap.add_argument("--dtype-texts", type=int, default=1000, help="texts for the float32 vs bfloat16 comparison")
    run_and_emit(ap, run, markdown)


if __name__ == "__main__":
    main()
