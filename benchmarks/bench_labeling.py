"""Time per phase of `interpret_sae` (KeyBERT labels + scoring of every feature) against a naive
loop that calls KeyBERT once per feature, on the built-in wiki sentences.

    python benchmarks/bench_labeling.py [--d-sae 3072 6144] [--cache-dir /tmp/sae-cache] [--naive-sample 50]

The SAE is a TopK SAE (k=32) trained here for a few epochs with its own loss (a quick stand-in for
`sae-train`: same model code, no Lightning), saved under <cache-dir>/bench_sae/ and reused. Each
size is labelled twice: "cold" with the store's phrase cache deleted first (every candidate word
and label embedded), then "warm" (a relabel). The naive loop embeds each feature's document and
candidates inside KeyBERT, one call per feature; it is timed on a sample of live features and
extrapolated linearly to all of them (said so in the table).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import wiki_all_source  # noqa: E402

from sae_lightning.data.datamodule import split_indices  # noqa: E402
from sae_lightning.data.embed import Embedder, build_store, load_model  # noqa: E402
from sae_lightning.labels import LabelingConfig, interpret_sae  # noqa: E402
from sae_lightning.models import SparseAutoencoder, build_sae, sae_config  # noqa: E402


def quick_topk_sae(store, train_idx: np.ndarray, d_sae: int, k: int, epochs: int, folder: Path) -> SparseAutoencoder:
    """A TopK SAE trained for a few epochs (Adam, AuxK on latents dead for 10k samples)."""
    if (folder / "cfg.json").is_file():
        return SparseAutoencoder.load(folder)
    torch.manual_seed(0)
    sae = build_sae(
        sae_config(architecture="topk", d_in=store.dim, d_sae=d_sae, k=k, metadata={"model_name": store.model_name})
    )
    X = torch.from_numpy(np.asarray(store.embeddings[train_idx], dtype=np.float32))
    sae.init_b_dec(X[:4096], "mean")
    opt = torch.optim.Adam(sae.parameters(), lr=2e-3)
    since_fired = torch.zeros(d_sae)
    step = 0
    for _ in range(epochs):
        for batch in torch.randperm(len(X)).split(1024):
            x = X[batch]
            out = sae(x)
            since_fired += len(x)
            since_fired[out.fire_counts > 0] = 0
            loss = sae.loss_terms(x, out, step=step, dead_mask=since_fired > 10_000)["loss"]
            opt.zero_grad()
            loss.backward()
            sae.remove_gradient_parallel_to_decoder_directions()
            opt.step()
            sae.set_decoder_norm_to_unit_norm()
            step += 1
    sae.save(folder)
    return sae


def naive_seconds_per_feature(df, cfg: LabelingConfig, model, sample: int, seed: int) -> tuple[float, int]:
    """KeyBERT once per feature, letting it embed the document and its candidates each time."""
    from keybert import KeyBERT

    kw = KeyBERT(model=model)
    live = df.index[~df["dead"]].to_numpy()
    pick = np.random.default_rng(seed).choice(live, size=min(sample, len(live)), replace=False)
    start = time.perf_counter()
    for f in pick:
        doc = "\n".join(df.at[f, "top_texts"])
        kw.extract_keywords(
            doc,
            keyphrase_ngram_range=tuple(cfg.ngram_range),
            stop_words=cfg.stop_words,
            use_mmr=cfg.use_mmr,
            diversity=cfg.diversity,
            top_n=cfg.top_n,
        )
    return (time.perf_counter() - start) / len(pick), len(pick)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d-sae", type=int, nargs="+", default=[3072, 6144])
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--cache-dir", default="/tmp/sae-cache")
    ap.add_argument("--naive-sample", type=int, default=50)
    args = ap.parse_args()

    store = build_store(wiki_all_source(), Embedder(show_progress=False), args.cache_dir)
    train_idx, val_idx = split_indices(len(store), 0.1, 0)
    cfg = LabelingConfig()
    model = load_model(store.model_name)
    print(
        f"store: {len(store)} texts ({len(train_idx)} train, {len(val_idx)} val), {store.model_name}; "
        f"torch threads: {torch.get_num_threads()}, CPUs: {os.cpu_count()}; load average at start: "
        f"{os.getloadavg()[0]:.1f}"
    )

    results = {}
    for d_sae in args.d_sae:
        t = time.perf_counter()
        sae = quick_topk_sae(
            store,
            train_idx,
            d_sae,
            args.k,
            args.epochs,
            Path(args.cache_dir) / "bench_sae" / f"topk_{d_sae}_k{args.k}_e{args.epochs}",
        )
        print(f"d_sae={d_sae}: SAE ready in {time.perf_counter() - t:.0f}s")
        runs = {}
        for temp in ("cold", "warm"):
            if temp == "cold":  # phrase embeddings and train-text counts both go
                shutil.rmtree(store.path / "keybert", ignore_errors=True)
            cpu = time.process_time()
            df, summary = interpret_sae(sae, store, train_idx, val_idx, cfg)
            runs[temp] = {**summary, "cpu_total": time.process_time() - cpu}
        per_feature, n = naive_seconds_per_feature(df, cfg, model, args.naive_sample, 0)
        results[d_sae] = (runs, per_feature, n, int((~df["dead"]).sum()))

    phases = [k for k in results[args.d_sae[0]][0]["cold"] if k.startswith("time_") and k != "time_total"]
    cols = [f"d_sae={d} {t}" for d in args.d_sae for t in ("cold", "warm")]
    print("\n| phase (s) | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for ph in phases + ["time_total"]:
        vals = [results[d][0][t].get(ph, 0.0) for d in args.d_sae for t in ("cold", "warm")]
        name = f"**{ph[5:]}**" if ph == "time_total" else ph[5:]
        print(f"| {name} | " + " | ".join(f"{v:.1f}" for v in vals) + " |")
    print(
        "| CPU seconds of the process (all threads) | "
        + " | ".join(f"{results[d][0][t]['cpu_total']:.1f}" for d in args.d_sae for t in ("cold", "warm"))
        + " |"
    )
    print(
        "| phrases embedded | "
        + " | ".join(str(results[d][0][t]["n_phrases_embedded"]) for d in args.d_sae for t in ("cold", "warm"))
        + " |"
    )
    print("\n| naive loop (KeyBERT once per feature) | " + " | ".join(f"d_sae={d}" for d in args.d_sae) + " |")
    print("|---|" + "---:|" * len(args.d_sae))
    print(
        "| s per feature (measured) | "
        + " | ".join(f"{results[d][1]:.2f} (n={results[d][2]})" for d in args.d_sae)
        + " |"
    )
    print(
        "| labelling all live features (extrapolated) | "
        + " | ".join(f"{results[d][1] * results[d][3]:.0f} s ({results[d][3]} live)" for d in args.d_sae)
        + " |"
    )
    print("\n| label quality | " + " | ".join(f"d_sae={d}" for d in args.d_sae) + " |")
    print("|---|" + "---:|" * len(args.d_sae))
    for key in (
        "label_auroc_mean",
        "random_auroc_mean",
        "tfidf_auroc_mean",
        "label_auroc_hard_mean",
        "random_auroc_hard_mean",
        "tfidf_auroc_hard_mean",
        "label_precision_mean",
        "label_recall_mean",
        "coherence_mean",
        "n_interpretable",
        "n_mixed",
        "n_labelled",
        "n_dead",
    ):
        print(f"| {key} | " + " | ".join(f"{results[d][0]['warm'][key]:.3g}" for d in args.d_sae) + " |")
    print(f"\nload average at end: {os.getloadavg()[0]:.1f} (other processes share the 2 cores)")


if __name__ == "__main__":
    main()
