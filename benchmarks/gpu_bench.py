"""Training samples/s on one GPU: this project's TopK (Lightning Trainer, trainer=gpu, and the bare
loop of the same math) against EleutherAI sparsify's SparseCoder, in one process, on the same GPU
and data; with the GPU's measured fp32 and bf16 matmul rates at the encoder's shape as the floor.

    python benchmarks/gpu_bench.py [--d-sae 16384 65536] [--batch 4096] [--steps 300] [--md FILE]
    python benchmarks/gpu_bench.py --device cpu --d-sae 512 --steps 3 --batch 256   # the dry run

Data: the fp16 store benchmarks/gpu_check.sh --prepare writes (real wiki MiniLM embeddings), held
on the GPU. Run by benchmarks/gpu_check.sh; its table goes into RESULTS.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
DEFAULT_STORE = HERE / "gpu_data" / "store"


def sparsify_without_its_trainer() -> None:
    """sparsify's __init__ imports its Trainer, which needs `datasets`; the SparseCoder does not.
    Where datasets is missing (the bare GPU machine), load the package without running __init__."""
    try:
        has_datasets = importlib.util.find_spec("datasets") is not None
    except ImportError:  # the dry run's stand-in for a machine without it
        has_datasets = False
    if has_datasets or "sparsify" in sys.modules:
        return
    spec = importlib.util.find_spec("sparsify")
    if spec is None:
        raise SystemExit("sparsify is not installed: benchmarks/gpu_check.sh installs it from benchmarks/gpu_wheels")
    pkg = types.ModuleType("sparsify")
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules["sparsify"] = pkg
    from sparsify.config import SparseCoderConfig
    from sparsify.sparse_coder import SparseCoder

    pkg.SparseCoder, pkg.SparseCoderConfig = SparseCoder, SparseCoderConfig


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_tflops(device: str, dtype: torch.dtype, batch: int, d_in: int, d_sae: int, seconds: float = 1.0) -> float:
    """Best rate of [batch, d_in] @ [d_in, d_sae] in `dtype` over ~`seconds` of repeats."""
    a = torch.randn(batch, d_in, device=device, dtype=dtype)
    b = torch.randn(d_in, d_sae, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    best, spent = float("inf"), 0.0
    while spent < seconds:
        sync(device)
        t = time.perf_counter()
        for _ in range(10):
            a @ b
        sync(device)
        dt = (time.perf_counter() - t) / 10
        best, spent = min(best, dt), spent + 10 * dt
    return 2 * batch * d_in * d_sae / best / 1e12


def timed(device: str, fn, steps: int, warmup: int = 5):
    fn(warmup)  # kernels loaded, cuBLAS handles made, autotuning done: not part of the rate
    sync(device)
    t = time.perf_counter()
    recon, seen = fn(steps)
    sync(device)
    return recon, seen, time.perf_counter() - t


def run(args) -> dict:
    import bench_training as bt

    from sae_lightning.data.store import EmbeddingStore

    sparsify_without_its_trainer()
    dev = args.device
    store = EmbeddingStore(args.store)
    X_all = torch.from_numpy(np.asarray(store.embeddings, dtype=np.float32))
    X_all = X_all[torch.randperm(len(X_all), generator=torch.Generator().manual_seed(0))]
    n_val = max(256, len(X_all) // 10)
    X, X_val = X_all[n_val:].to(dev), X_all[:n_val].to(dev)
    trainer = ["trainer=gpu"] if dev.startswith("cuda") else ["trainer=default"]
    rows, floors = [], []
    work = Path(tempfile.mkdtemp(prefix="gpu_bench_"))
    for d_sae in args.d_sae:
        cfg = bt.compose(d_sae, args.batch, "float32", tuple(trainer))
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            tf = matmul_tflops(dev, dtype, args.batch, store.dim, d_sae)
            floors.append(
                {
                    "d_sae": d_sae,
                    "matmul": name,
                    "TFLOP/s (best)": tf,
                    "floor samples/s": tf * 1e12 / (2 * store.dim * d_sae),
                }
            )
        runs = {
            "sae-lightning (Lightning Trainer)": lambda n: bt.train_lightning(cfg, store, n, work / f"pl_{d_sae}_{n}"),
            "sae-lightning bare loop, same math": lambda n: bt.train_bare(cfg, X, n),
            "sparsify SparseCoder (its defaults)": lambda n: bt.train_sparsify(X, d_sae, args.batch, n, dev),
        }
        for trainer_name, fn in runs.items():
            if args.only and not any(s in trainer_name for s in args.only):
                continue
            recon, seen, seconds = timed(dev, fn, args.steps)
            row = {
                "d_sae": d_sae,
                "trainer": trainer_name,
                "batch": args.batch,
                "steps": args.steps,
                "seconds": round(seconds, 2),
                "samples/s": seen / seconds,
                "val fve": round(bt.fve(recon, X_val), 4),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    fp32 = {f["d_sae"]: f["floor samples/s"] for f in floors if f["matmul"] == "fp32"}
    for r in rows:
        r["share of fp32 floor"] = f"{r['samples/s'] / fp32[r['d_sae']]:.1%}"
    name = torch.cuda.get_device_name(0) if dev.startswith("cuda") else "CPU (dry run)"
    return {
        "device": name,
        "torch": torch.__version__,
        "rows": rows,
        "floors": floors,
        "tf32": torch.backends.cuda.matmul.allow_tf32,
        "store": f"{len(store)} x {store.dim} {store.embeddings.dtype}",
    }


def markdown(result: dict) -> str:
    from common import md_table

    return "\n".join(
        [
            f"### GPU training throughput: {result['device']} (torch {result['torch']}, TF32 matmul "
            f"{'on' if result['tf32'] else 'off'}; data: {result['store']} wiki MiniLM embeddings, held on the device "
            "by the bare loop and sparsify, streamed from the store by the Trainer)",
            "",
            md_table(
                result["rows"],
                ["d_sae", "trainer", "batch", "steps", "seconds", "samples/s", "share of fp32 floor", "val fve"],
            ),
            "",
            "The floor: torch.mm at the encoder's shape [batch, 384] @ [384, d_sae], best of ~1 s of repeats; "
            "floor samples/s = rate / (2 * 384 * d_sae), the encoder's forward FLOPs alone.",
            "",
            md_table(result["floors"]),
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d-sae", type=int, nargs="+", default=[16384, 65536])
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--store", default=str(DEFAULT_STORE))
    ap.add_argument("--only", nargs="*", default=None, help="substrings of the trainer names to run")
    ap.add_argument("--md", default=None, help="also write the markdown table here")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    result = run(args)
    md = markdown(result)
    print(md)
    if args.md:
        Path(args.md).write_text(md + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
