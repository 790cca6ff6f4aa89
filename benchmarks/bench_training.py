"""SAE training throughput and quality against peers and against the machine's matmul floor.

    python benchmarks/bench_training.py [--d-sae 3072 6144] [--epochs 3] [--datasets builtin synthetic]

TopK SAEs (d_in 384, k 32) on (a) the built-in wiki sentences embedded with MiniLM and (b) 200,000
synthetic unit-norm embeddings, each trained for the same number of samples by:

- this project through the real Lightning Trainer: `SAEModule` + `EmbeddingDataModule` (reading the
  store from disk) + `pl.Trainer` built from the composed Hydra config (conf/), so batch size,
  learning rate and schedule, gradient clipping, determinism and per-step logging are the defaults
  a user gets; labelling, checkpoints and validation are left out of the timed fit;
- a bare PyTorch loop of the same math (same SAE module, loss, AuxK, Adam, schedule, clipping) over
  an in-RAM tensor: what Lightning and the DataModule cost;
- HypotheSAEs' `train_sae` at its recommended settings (batch 512, lr 5e-4, Adam) and at the
  matched batch size;
- EleutherAI sparsify's `SparseCoder` driven the way its `Trainer` drives it on an activation batch
  (b_dec = first batch mean, SignSGD + ScheduleFree at its default lr for the width, no AuxK as its
  default `auxk_alpha=0`, decoder-gradient projection): its own trainer needs a Hugging Face language
  model to hook, and its batch is counted in LLM token sequences, so it runs at the matched size.

fve = 1 - sum ||x - x_hat||^2 / sum ||x - mean||^2 over the same held-out rows for every trainer (the
DataModule's validation split), computed here in float64 from each trainer's own forward pass.
The floor: the float32 `torch.mm` rate measured here for the encoder's shape, turned into samples/s
for the encoder's forward FLOPs (2 d_in d_sae per sample); each trainer's share of it is its
samples/s divided by that.

This file holds the data and the comparison driver; the trainers and `fve` are in trainers.py.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import common  # (sets sys.path and env first)
import numpy as np
import torch
import torch.nn.functional as F
from common import floor_samples_per_s, load, machine, matmul_rate, md_table, run_and_emit
from trainers import compose, fve, train_bare, train_hypothesaes, train_lightning, train_sparsify

D_IN = 384
WARMUP_STEPS = 5  # untimed steps of each trainer before its timed run


# ---- data ------------------------------------------------------------------------------------


def builtin_store(cache_dir: str | None):
    from sae_lightning.data.embed import Embedder, build_store

    return build_store(common.wiki_all_source(), Embedder(show_progress=False), cache_dir)


def synthetic_embeddings(n: int, d: int, n_dirs: int = 4096, active: int = 16, seed: int = 0, chunk: int = 20_000):
    """Rows that are each a sum of `active` of `n_dirs` random unit directions (coefficients
    uniform in [0.5, 1.5), the recipe of `sparse_dictionary_data`), L2-normalised like MiniLM's
    embeddings. More directions than either SAE has latents, so neither reaches fve 1."""
    gen = torch.Generator().manual_seed(seed)
    dirs = F.normalize(torch.randn(n_dirs, d, generator=gen), dim=1)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        support = torch.randint(0, n_dirs, (m, active), generator=gen)
        coef = 0.5 + torch.rand(m, active, generator=gen)
        x = F.embedding_bag(
            support.flatten(), dirs, torch.arange(0, m * active, active), mode="sum", per_sample_weights=coef.flatten()
        )
        yield F.normalize(x, dim=1).numpy()


def synthetic_store(n: int, folder: Path, seed: int = 0):
    """A real embedding store (the layout `sae-embed` writes) holding n synthetic rows."""
    import pandas as pd

    from sae_lightning.data.store import StoreWriter

    shard = 20_000
    writer = StoreWriter(
        folder,
        {
            "fingerprint": f"synthetic-{n}-{seed}",
            "model_name": "synthetic",
            "dim": D_IN,
            "count": n,
            "dtype": "float32",
            "normalized": True,
            "domains": ["synthetic"],
            "source": {"source": "synthetic"},
        },
        shard,
    )
    for i, block in enumerate(synthetic_embeddings(n, D_IN, seed=seed, chunk=shard)):
        writer.write_shard(i, block)
    ids = [str(i) for i in range(n)]
    return writer.finalize(pd.DataFrame({"id": ids, "text": [""] * n, "domain": ["synthetic"] * n}))


# ---- driver ---------------------------------------------------------------------------------------


def run(args) -> dict:
    from sae_lightning.data.datamodule import split_indices

    rows, floors = [], []
    work = Path(tempfile.mkdtemp(prefix="bench_training_"))
    try:
        stores = {}
        if "builtin" in args.datasets:
            stores["builtin"] = builtin_store(args.cache_dir)
        if "synthetic" in args.datasets:
            t = time.perf_counter()
            stores["synthetic"] = synthetic_store(args.synthetic_n, work / "synthetic_store")
            print(f"synthetic store: {args.synthetic_n} x {D_IN} in {time.perf_counter() - t:.0f}s", flush=True)
        base_cfg = compose(args.d_sae[0], args.batch, args.select_dtype)
        bs, val_fraction, seed = int(base_cfg.data.batch_size), float(base_cfg.data.val_fraction), int(base_cfg.seed)
        n_builtin = None
        for name, store in stores.items():
            train_idx, val_idx = split_indices(len(store), val_fraction, seed)
            X = torch.from_numpy(np.asarray(store.embeddings[np.sort(train_idx)], dtype=np.float32))
            X = X[torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))]  # rows in random order
            X_val = torch.from_numpy(np.asarray(store.embeddings[val_idx], dtype=np.float32))
            if name == "builtin":
                n_builtin = len(X)
                samples = args.epochs * len(X)
            else:
                samples = args.synthetic_samples or (args.epochs * n_builtin if n_builtin else 100_000)
            steps = max(1, samples // bs)
            for d_sae in args.d_sae:
                cfg = compose(d_sae, args.batch, args.select_dtype)
                for threads in sorted({1, common.cores()}):
                    torch.set_num_threads(threads)
                    rate = matmul_rate(bs, D_IN, d_sae)
                    floors.append(
                        {
                            "data": name,
                            "d_sae": d_sae,
                            "batch": bs,
                            "torch threads": threads,
                            "matmul GFLOP/s (best)": rate["gflops_best"],
                            "matmul GFLOP/s (median)": rate["gflops_median"],
                            "floor samples/s": floor_samples_per_s(rate["gflops_best"], D_IN, d_sae),
                        }
                    )
                torch.set_num_threads(args.threads)
                # Each entry: (train(n_steps) -> (recon, samples), batch, settings).
                runs = {
                    "sae-lightning (Lightning Trainer)": (
                        lambda n: train_lightning(cfg, store, n, work / f"pl_{name}_{d_sae}_{n}"),
                        bs,
                        f"Adam lr {cfg.module.lr}, warm-up {cfg.module.warmup_steps}, {cfg.module.decay}"
                        + (f", {args.select_dtype} select" if args.select_dtype != "float32" else ""),
                    ),
                    "bare PyTorch loop, same math": (lambda n: train_bare(cfg, X, n), bs, "as above"),
                    "HypotheSAEs train_sae (recommended)": (
                        lambda n: train_hypothesaes(X, d_sae, 512, n * bs),
                        512,
                        "Adam lr 5e-4, bs 512",
                    ),
                    "HypotheSAEs train_sae (matched batch)": (
                        lambda n: train_hypothesaes(X, d_sae, bs, n * bs),
                        bs,
                        "Adam lr 5e-4",
                    )
                    if bs != 512
                    else None,  # the same run as the one above
                    "sparsify SparseCoder (its defaults)": (
                        lambda n: train_sparsify(X, d_sae, bs, n),
                        bs,
                        "SignSGD+ScheduleFree",
                    ),
                }
                for trainer, spec in runs.items():
                    if spec is None or not any(sel in trainer.lower() for sel in args.trainers):
                        continue
                    fn, batch, settings = spec
                    # A few untimed steps first, for every trainer: what a process does once (kernels
                    # loaded from numba's cache, oneDNN primitives built, imports) stays out of the rate.
                    fn(WARMUP_STEPS)
                    t = time.perf_counter()
                    recon, seen = fn(steps)
                    seconds = time.perf_counter() - t
                    row = {
                        "data": name,
                        "d_sae": d_sae,
                        "trainer": trainer,
                        "batch": batch,
                        "settings": settings,
                        "samples": seen,
                        "seconds": round(seconds, 1),
                        "samples/s": seen / seconds,
                        "val fve": round(fve(recon, X_val), 4),
                        "load": load(),
                    }
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # The floor of a width is the best rate measured for it anywhere in this run (the machine's limit;
    # a shared machine measures lower at busy moments); the 1-thread floor for reference.
    for r in rows:
        same = [f for f in floors if f["d_sae"] == r["d_sae"]]
        r["share of floor"] = f"{r['samples/s'] / max(f['floor samples/s'] for f in same):.1%}"
        r["share of 1-thread floor"] = (
            f"{r['samples/s'] / max(f['floor samples/s'] for f in same if f['torch threads'] == 1):.1%}"
        )
    return {
        "rows": rows,
        "floors": floors,
        "summary": summarise(rows),
        "threads": args.threads,
        "samples_note": f"{args.epochs} epochs of the built-in sentences",
    }


def summarise(rows: list[dict]) -> list[dict]:
    """Per (data, d_sae): this project's speed against each peer, and the fve gap."""
    out = []
    for key in sorted({(r["data"], r["d_sae"]) for r in rows}):
        group = {r["trainer"]: r for r in rows if (r["data"], r["d_sae"]) == key}
        ours = group.get("sae-lightning (Lightning Trainer)")
        if not ours:
            continue
        line = {
            "data": key[0],
            "d_sae": key[1],
            "sae-lightning samples/s": ours["samples/s"],
            "share of floor": ours["share of floor"],
            "fve": ours["val fve"],
        }
        for label, trainer in (
            ("× HypotheSAEs (rec.)", "HypotheSAEs train_sae (recommended)"),
            ("× HypotheSAEs (bs)", "HypotheSAEs train_sae (matched batch)"),
            ("× sparsify", "sparsify SparseCoder (its defaults)"),
            ("× bare loop", "bare PyTorch loop, same math"),
        ):
            peer = group.get(trainer)
            if peer:
                line[label] = (
                    f"{ours['samples/s'] / peer['samples/s']:.2f}× (fve {ours['val fve'] - peer['val fve']:+.3f})"
                )
        out.append(line)
    return out


def markdown(result: dict) -> str:
    cols = [
        "data",
        "d_sae",
        "trainer",
        "batch",
        "settings",
        "samples",
        "seconds",
        "samples/s",
        "share of floor",
        "share of 1-thread floor",
        "val fve",
        "load",
    ]
    note = result.get("samples_note", "")
    parts = [
        f"### Training throughput and quality ({note}, the same number of samples on the synthetic set; "
        "fve on the same held-out rows for every trainer)",
        "",
        md_table(result["rows"], cols),
    ]
    if result["summary"]:
        parts += [
            "",
            "this project against each peer: speed ratio (fve difference; + means ours is better)",
            "",
            md_table(result["summary"]),
        ]
    parts += [
        "",
        "### The floor: float32 torch.mm at the encoder's shape [batch, 384] @ [384, d_sae]",
        "",
        "Best and median rate over ~3 s of repeats; floor samples/s = best rate / (2 * 384 * d_sae), the "
        "encoder's forward FLOPs alone. `share of floor` above is against the best floor measured for that "
        "width anywhere in this run (the machine's limit), `share of 1-thread floor` against the best with "
        f"one torch thread. Trainers ran with {result.get('threads')} torch threads.",
        "",
        md_table(result["floors"]),
    ]
    return "\n".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d-sae", type=int, nargs="+", default=[3072, 6144])
    ap.add_argument("--datasets", nargs="+", default=["builtin", "synthetic"], choices=["builtin", "synthetic"])
    ap.add_argument(
        "--trainers",
        nargs="+",
        default=["lightning", "bare", "hypothesaes", "sparsify"],
        help="substrings of the trainer names to run",
    )
    ap.add_argument("--epochs", type=int, default=6, help="epochs over the built-in sentences (sets the sample budget)")
    ap.add_argument("--synthetic-n", type=int, default=200_000)
    ap.add_argument(
        "--synthetic-samples",
        type=int,
        default=None,
        help="samples trained on the synthetic set (default: the built-in budget)",
    )
    ap.add_argument("--batch", type=int, default=None, help="matched batch size (default: conf/data/default.yaml)")
    ap.add_argument(
        "--select-dtype",
        default="float32",
        choices=["float32", "bfloat16"],
        help="sae.select_dtype of this project's trainers (bfloat16: AMX CPUs, large batches)",
    )
    ap.add_argument("--cache-dir", default=None, help="embedding store cache (default: the project's)")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads for every trainer (default: torch's, all cores). On a machine shared with "
        "other jobs set OMP_WAIT_POLICY=PASSIVE or use 1: spinning OpenMP threads made each "
        "step several times slower here",
    )
    run_and_emit(ap, run, markdown, prepare)


def prepare(args) -> None:
    from sae_lightning import runtime

    args.trainers = [t.lower() for t in args.trainers]
    # What sae-train applies from conf/runtime/ (freed blocks kept, no NaN fill), set once here,
    # before any trainer: every trainer of this process runs with it.
    print(json.dumps({"runtime": runtime.apply(runtime.RuntimeSettings())}), flush=True)
    args.threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(args.threads)
    print(json.dumps(machine()), flush=True)


if __name__ == "__main__":
    main()
