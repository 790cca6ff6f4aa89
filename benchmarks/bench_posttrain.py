"""Time and peak RSS of every post-training stage (the scan, labelling, scoring, families) at
100k texts and, with --full, 1M, and how they grow: linear is 10x for 10x the texts.

    nice -n 10 python benchmarks/bench_posttrain.py [--full] [--d-sae 16384] [--cache-dir /tmp/sae-bench]
    nice -n 10 python benchmarks/bench_posttrain.py --sizes 10000 --d-sae 3072 --ks 32 256   # L0 axis

The store is benchmarks/scale_store.py's (real wiki sentences resampled, real MiniLM embeddings
plus noise); the SAE a seeded random-init TopK (d_sae 16384, k 32): what costs memory and time is
the number of texts and features, not what the features mean. Each size runs `label_run_dir` (what
`sae-label` and the end of `sae-train` do: labels, scores, families) in a fresh process. A thread
samples the process's RSS every 20 ms; every labelling phase (PhaseTimer) reports its seconds and
the largest RSS seen while it ran. The train-counts cache is deleted before each run (so counting
is measured); the phrase-embedding cache is kept (a model cost that does not grow with the texts).

`--ks` measures the other axis, the SAE's density, at one size: a TopK fires exactly k latents
per text, so k stands for the L0 of a ReLU or JumpReLU SAE (the study's ran at L0 ~270-320),
whose co-firing pairs grow as L0² per text (scan/coactivation.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, md_table, peak_rss_mib  # noqa: E402

PAGE = 4096


def rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE / 2**20


class RssSampler(threading.Thread):
    """Largest RSS seen while each open phase ran (phases may nest)."""

    def __init__(self, every: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.every, self.open, self.lock = every, {}, threading.Lock()

    def run(self) -> None:
        while True:
            rss = rss_mib()
            with self.lock:
                for key in self.open:
                    self.open[key] = max(self.open[key], rss)
            time.sleep(self.every)

    @contextlib.contextmanager
    def phase(self, key):
        with self.lock:
            self.open[key] = rss_mib()
        try:
            yield
        finally:
            with self.lock:
                peak = max(self.open.pop(key), rss_mib())
            self.last = peak


def make_run(store, d_sae: int, k: int, root: Path) -> Path:
    import torch

    from sae_lightning.models import build_sae, sae_config

    torch.manual_seed(0)
    sae = build_sae(
        sae_config(architecture="topk", d_in=store.dim, d_sae=d_sae, k=k, metadata={"model_name": store.model_name})
    )
    run = root / f"run_n{len(store)}_d{d_sae}"
    shutil.rmtree(run, ignore_errors=True)
    sae.save(run / "sae")
    families = {"min_weight": 0.2, "min_children": 2, "min_cooccur": 2, "max_density": 0.1, "texts_per_member": 5}
    (run / "run.json").write_text(
        json.dumps(
            {"store_path": str(store.path), "val_fraction": 0.1, "seed": 0, "has_texts": True, "families": families}
        )
    )
    return run


def one_size(args) -> None:
    """Child process: one size, prints one JSON line {stages: [...], ...}."""
    from scale_store import scale_store

    from sae_lightning.label_run import label_run_dir
    from sae_lightning.labels import LabelingConfig, phase_timer

    store = scale_store(args.one, args.cache_dir)
    shutil.rmtree(store.path / "keybert" / "counts", ignore_errors=True)
    run = make_run(store, args.d_sae, args.k, Path(args.cache_dir) / "bench_runs")
    del store
    sampler = RssSampler()
    sampler.start()
    stages: list[dict] = []
    original = phase_timer.PhaseTimer.__call__

    @contextlib.contextmanager
    def recorded(self, name):
        start = time.perf_counter()
        with sampler.phase((id(self), name, start)), original(self, name):
            yield
        stages.append({"stage": name, "seconds": time.perf_counter() - start, "peak_rss_mib": sampler.last})

    phase_timer.PhaseTimer.__call__ = recorded
    try:  # the code before the single scan built families in a function of its own, outside any PhaseTimer
        from sae_lightning.families import build as fam_module

        if hasattr(fam_module, "coactivation"):
            build = fam_module.build_families

            def timed_build(*a, **kw):
                with phase_timer.PhaseTimer()("families"):
                    return build(*a, **kw)

            fam_module.build_families = timed_build
    except ImportError:
        pass
    start_rss = rss_mib()
    t0 = time.perf_counter()
    with sampler.phase("all"):
        label_run_dir(run, LabelingConfig())
    stages.append({"stage": "label_run_dir (all)", "seconds": time.perf_counter() - t0, "peak_rss_mib": sampler.last})
    print(json.dumps({"n": args.one, "start_rss_mib": start_rss, "vmhwm_mib": peak_rss_mib(), "stages": stages}))


def run_sizes(args) -> list[dict]:
    from scale_store import scale_store

    out = []
    for n in args.sizes:
        scale_store(n, args.cache_dir)  # built (or found) here, so the child measures only the stages
        cmd = [
            sys.executable,
            __file__,
            "--one",
            str(n),
            "--d-sae",
            str(args.d_sae),
            "--k",
            str(args.k),
            "--cache-dir",
            args.cache_dir,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            sys.exit(f"size {n} failed:\n{proc.stderr[-4000:]}")
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"n={n}: done", file=sys.stderr)
    return out


def stage_rows(results: list[dict]) -> list[dict]:
    """One row per stage: seconds and peak RSS at each size, and their growth from the first size
    to the last (bench_scale.py prints the same rows)."""
    names = list(dict.fromkeys(s["stage"] for r in results for s in r["stages"]))
    rows = []
    for name in names:
        row: dict = {"stage": name}
        for r in results:
            got = [s for s in r["stages"] if s["stage"] == name]
            row[f"s @{r['n']:,}"] = sum(s["seconds"] for s in got) if got else None
            row[f"peak MiB @{r['n']:,}"] = max(s["peak_rss_mib"] for s in got) if got else None
        if len(results) > 1:
            a, b = row[f"s @{results[0]['n']:,}"], row[f"s @{results[-1]['n']:,}"]
            row["time growth"] = f"{b / a:.1f}x" if a and b and a > 0.05 else ""
            a, b = row[f"peak MiB @{results[0]['n']:,}"], row[f"peak MiB @{results[-1]['n']:,}"]
            row["rss growth"] = f"{b / a:.2f}x" if a and b else ""
        rows.append(row)
    return rows


def density_rows(by_k: dict[int, dict]) -> list[dict]:
    """One row per k (one size): the scan's and the whole labelling's seconds and peak RSS."""
    rows = []
    for k, r in by_k.items():
        stage = {s["stage"]: s for s in r["stages"]}
        rows.append(
            {
                "k (= L0)": k,
                "texts": f"{r['n']:,}",
                "scan s": stage["scan"]["seconds"],
                "scan peak MiB": stage["scan"]["peak_rss_mib"],
                "labelling s": stage["label_run_dir (all)"]["seconds"],
                "labelling peak MiB": stage["label_run_dir (all)"]["peak_rss_mib"],
                "VmHWM MiB": r["vmhwm_mib"],
            }
        )
    return rows


def table(results: list[dict]) -> str:
    rows = stage_rows(results)
    head = ", ".join(
        f"n={r['n']:,}: RSS at start {r['start_rss_mib']:,.0f} MiB, VmHWM {r['vmhwm_mib']:,.0f} MiB" for r in results
    )
    return head + "\n\n" + md_table(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="also 1,000,000 texts")
    ap.add_argument(
        "--sizes", type=int, nargs="*", default=None, help="texts per store (default 100000, + 1M with --full)"
    )
    ap.add_argument("--d-sae", type=int, default=16384)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--ks", type=int, nargs="*", default=None, help="the L0 axis: the first size at each of these k")
    ap.add_argument("--cache-dir", default="/tmp/sae-bench-posttrain")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    if args.one:
        return one_size(args)
    args.sizes = args.sizes or ([100_000, 1_000_000] if args.full else [100_000])
    if args.ks:
        args.sizes, by_k = args.sizes[:1], {}
        for k in args.ks:
            args.k = k
            by_k[k] = run_sizes(args)[0]
        if args.json:
            Path(args.json).write_text(json.dumps(by_k, indent=1))
        return print(md_table(density_rows(by_k)))
    results = run_sizes(args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print(table(results))


if __name__ == "__main__":
    main()
