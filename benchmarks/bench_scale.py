"""Time and peak RSS of every stage at two corpus sizes, and how they grow: build the
store, train one epoch, then the post-training stages (one scan, labels, scores, families), the
report and sae-compare. Linear is 10x for 10x the texts; memory should stay flat.

    nice -n 10 python benchmarks/bench_scale.py            # 2,000 and 20,000 texts, d_sae 1024 (make bench)
    nice -n 10 python benchmarks/bench_scale.py --full     # 100,000 and 1,000,000 texts, d_sae 16384

Reuses the scale benchmarks of the post-training work: `scale_store.py` (real wiki sentences
resampled, real MiniLM embeddings plus seeded noise, written shard by shard) and
`bench_posttrain.py` (its RSS sampler and per-phase timing of `label_run_dir`). Here the SAE is
really trained, one epoch through the Lightning Trainer (what `sae-train` runs), before the
stages run on it. Each size runs in a fresh process, so one size's peak RSS cannot hide another's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402,F401  (sets sys.path and env first)
from common import ROOT, md_table, run_and_emit  # noqa: E402

SMALL, FULL = ([2_000, 20_000], 1024), ([100_000, 1_000_000], 16384)


def one_size(n: int, d_sae: int, k: int, cache_dir: str) -> dict:
    """Child process: every stage of one size, timed, with the peak RSS seen while each ran."""
    import bench_posttrain as bp
    import bench_training as bt
    from scale_store import scale_store

    sampler = bp.RssSampler()
    sampler.start()
    stages = []

    def stage(name: str, fn):
        t = time.perf_counter()
        with sampler.phase(name):
            out = fn()
        stages.append({"stage": name, "seconds": time.perf_counter() - t, "peak_rss_mib": sampler.last})
        return out

    store = stage("store (build)", lambda: scale_store(n, cache_dir))
    cfg = bt.compose(d_sae, None, "float32", (f"sae.k={k}",))
    steps = max(1, int(n * (1 - cfg.data.val_fraction)) // int(cfg.data.batch_size))  # one epoch
    work = Path(cache_dir) / "bench_scale" / f"n{n}_d{d_sae}"
    recon, _ = stage("train (1 epoch)", lambda: bt.train_lightning(cfg, store, steps, work / "train"))
    run = bp.make_run(store, d_sae, k, work)  # the run folder of bench_posttrain, with the trained SAE in it
    recon.sae.save(run / "sae")
    from sae_lightning.run_dir import RunDir

    RunDir(run).write_metrics({"epochs": 1})  # what export writes; the report needs the file, not its numbers
    # label_run_dir's own phases (scan, labels, scoring, families), timed by bench_posttrain's patch
    sub = argparse.Namespace(one=n, d_sae=d_sae, k=k, cache_dir=cache_dir)
    bp.make_run = lambda *a, **kw: run
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        bp.one_size(sub)
    post = json.loads(buf.getvalue().strip().splitlines()[-1])
    stages += post["stages"]

    from sae_lightning.compare import compare_runs, write_comparison
    from sae_lightning.report import write_report

    stage("report", lambda: write_report(run))
    # sae-compare reads decoders and feature tables, never texts: it should not grow with n at all
    stage("compare (joint run)", lambda: write_comparison(compare_runs([run]), work / "compare"))
    return {"n": n, "d_sae": d_sae, "stages": stages, "vmhwm_mib": bp.peak_rss_mib()}


def run(args) -> dict:
    sizes, d_sae = FULL if args.full else SMALL
    sizes, d_sae = args.sizes or sizes, args.d_sae or d_sae
    results = []
    for n in sizes:
        cmd = [
            sys.executable,
            __file__,
            "--one",
            str(n),
            "--d-sae",
            str(d_sae),
            "--k",
            str(args.k),
            "--cache-dir",
            args.cache_dir,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            raise SystemExit(f"size {n} failed:\n{proc.stderr[-4000:]}")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    return {"results": results, "d_sae": d_sae, "k": args.k}


def markdown(result: dict) -> str:
    import bench_posttrain as bp

    res = result["results"]
    rows = bp.stage_rows(res)
    head = ", ".join(f"{r['n']:,} texts: VmHWM {r['vmhwm_mib']:,.0f} MiB" for r in res)
    sizes = " and ".join(f"{r['n']:,}" for r in res)
    return "\n".join(
        [
            f"### Scale: every stage at {sizes} texts (TopK d_sae {result['d_sae']}, k {result['k']})",
            "",
            head,
            "",
            md_table(rows),
        ]
    )


def main() -> None:
    if "--one" in sys.argv:
        ap = argparse.ArgumentParser()
        ap.add_argument("--one", type=int)
        ap.add_argument("--d-sae", type=int)
        ap.add_argument("--k", type=int)
        ap.add_argument("--cache-dir")
        a = ap.parse_args()
        print(json.dumps(one_size(a.one, a.d_sae, a.k, a.cache_dir)))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="100,000 and 1,000,000 texts at d_sae 16384")
    ap.add_argument("--sizes", type=int, nargs="*", default=None)
    ap.add_argument("--d-sae", type=int, default=None)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--cache-dir", default="/tmp/sae-bench-scale")
    run_and_emit(ap, run, markdown)


if __name__ == "__main__":
    main()
