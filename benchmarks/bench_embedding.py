"""Texts/s of the embedding stage (`build_store` into a fresh cache: corpus fingerprint, sharded
encode, store files) against a bare `SentenceTransformer.encode` call on the same texts.

    python benchmarks/bench_embedding.py [--texts 3000] [--threads 1]

The texts are built-in wiki sentences spread evenly over the 11 topics (`WikiVitalArticles(limit=N)`),
the model the packaged all-MiniLM-L6-v2, loaded once before anything is timed (its load time is
reported apart). The bare call runs at sentence-transformers' default batch (32) and at the
Embedder's (128), so that the gap to the stage is overhead, not settings.
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

from common import load, md_table, run_and_emit


def run(args) -> dict:
    from sae_lightning.embed import Embedder, build_store, load_model
    from sae_lightning.sources import WikiVitalArticles
    from sae_lightning.sources.wiki import WIKI_TOPICS

    args.threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(args.threads)
    source = WikiVitalArticles(topics=list(WIKI_TOPICS.values()), limit=args.texts)
    texts = list(source.load().texts)
    embedder = Embedder(show_progress=False)
    t = time.perf_counter()
    model = load_model(embedder.model)
    load_s = time.perf_counter() - t
    model.encode(texts[:64], batch_size=32)  # warm-up: first-call allocations, tokenizer caches

    rows = []

    def record(name: str, seconds: float, note: str) -> None:
        rows.append({"path": name, "texts": len(texts), "seconds": round(seconds, 1), "texts/s": len(texts) / seconds,
                     "note": note, "load": load()})
        print(json.dumps(rows[-1]), flush=True)

    for _ in range(args.repeats):
        t = time.perf_counter()
        model.encode(texts, batch_size=32, convert_to_numpy=True, show_progress_bar=False)
        record("bare SentenceTransformer.encode", time.perf_counter() - t, "batch_size=32 (its default)")
        t = time.perf_counter()
        model.encode(texts, batch_size=embedder.batch_size, convert_to_numpy=True, show_progress_bar=False)
        record("bare SentenceTransformer.encode", time.perf_counter() - t, f"batch_size={embedder.batch_size} (the Embedder's)")
        cache = Path(tempfile.mkdtemp(prefix="bench_embedding_"))
        try:
            t = time.perf_counter()
            store = build_store(source, embedder, cache)
            record("embedding stage: build_store", time.perf_counter() - t,
                   f"fresh cache; {len(store)} rows, shards of {embedder.shard_size}, fingerprint, parquet, manifest")
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    best = {}
    for r in rows:
        key = (r["path"], r["note"])
        if key not in best or r["texts/s"] > best[key]["texts/s"]:
            best[key] = r
    stage = max(r["texts/s"] for r in rows if r["path"].startswith("embedding stage"))
    bare = max(r["texts/s"] for r in rows if r["path"].startswith("bare") and "Embedder" in r["note"])
    return {"rows": list(best.values()), "model_load_s": load_s, "threads": args.threads,
            "stage_vs_bare": stage / bare, "repeats": args.repeats}


def markdown(result: dict) -> str:
    return "\n".join([
        f"### Embedding: texts/s, built-in sentences, all-MiniLM-L6-v2 on CPU (torch threads {result['threads']}, "
        f"best of {result['repeats']}; model load {result['model_load_s']:.1f} s, not timed)", "",
        md_table(result["rows"], ["path", "note", "texts", "seconds", "texts/s", "load"]), "",
        f"The embedding stage runs at {result['stage_vs_bare']:.0%} of the bare encode at the same batch size."])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, all cores)")
    ap.add_argument("--repeats", type=int, default=2, help="each path runs this many times; the best counts")
    run_and_emit(ap, run, markdown)


if __name__ == "__main__":
    main()
