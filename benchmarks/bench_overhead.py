"""What sae-train's fit costs beyond the project's own bare training loop, piece by piece.

    python benchmarks/bench_overhead.py [--epochs 4] [--rounds 2] [--only NAME ...]

Every row is one fresh process, run one at a time (never two at once), the rows interleaved over
`--rounds` so that a change of load on shared cores falls on all of them; the table gives each
row's median and the 1-minute load average around it. sae-train's default TopK SAE but at k 32 for
every row (sae.k's default is 16), d_sae 3072, batch 512, on the built-in wiki sentences, `--epochs`
passes:

- `bare loop`: trainers.train_bare, the same math as SAEModule (loss, AuxK, fused Adam, schedule,
  clipping, decoder projection) over an in-RAM tensor, in sae-train's own batch order and from its
  own start (seed, b_dec sample), so both do the same work: its fve column is sae-train's when the
  two agree. The loop alone is timed.
- `sparsify, batch 512`: bench_training.train_sparsify, sparsify's SparseCoder stepped the way its
  Trainer steps it, on the same rows (skipped when eai-sparsify is not installed: `make bench`
  installs it).
- `sae-train`: the command itself (labelling off, everything else its defaults: W&B offline, the
  epoch checkpoint, the periodic checkpoint, validation per epoch, one log line per epoch);
  its time is the fit alone, metrics.json's `timings_s.fit`.
- `sae-train, X off`: the same with one piece removed, so `sae-train` minus it is what X costs.
- `sae-train, last.ckpt serialised again`: the epoch checkpoint as Lightning's ModelCheckpoint writes
  it (the state saved twice at every epoch's end, the default before EpochCheckpoint): `sae-train`
  minus it is what the hard-linked last.ckpt and the epoch checkpoint's interval save.
- `sae-train, epoch checkpoint every epoch`: `callbacks.model_checkpoint.min_interval_seconds=null`,
  the epoch checkpoint at every epoch's end (the default before it waited for the last checkpoint
  to be 30 s old).
- `sae-train, +trainer.precision=bf16-mixed` / `sae.select_dtype=bfloat16`: bf16 on an AMX CPU,
  Lightning's autocast or the knob that picks the k latents alone in bf16; the fve column shows
  what each costs in quality (every row is seeded: one fve per row).
- `sae-train, <folder>` (with `--base-tree <folder>`): sae-train from another checkout, e.g. a
  `git worktree add --detach <folder> main`, to weigh a change before and after in one run.
- `..., OMP_WAIT_POLICY=ACTIVE`: OpenMP's threads spin between parallel regions (OpenMP's
  default) instead of sleeping (conf/runtime's `omp_wait_policy: passive`).

A piece below ~0.3 s hides in the rounds' noise on shared cores; bench_overhead_pieces.py times the
pieces inside one fit instead.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
from common import ROOT, K, machine, md_table

CLI = ["-c", "from sae_lightning.cli import train; train()"]
# the loops' k (the default sae.k is 16: at it sae-train did less work than the rows it was compared with)
BASE = ["labeling.enabled=false", f"sae.k={K}"]
PIECES = {  # row -> the overrides that take the piece out of sae-train
    "periodic checkpoint off": ["~callbacks.periodic_checkpoint"],
    "both checkpoints off": [
        "~callbacks.periodic_checkpoint",
        "~callbacks.model_checkpoint",
        "+trainer.enable_checkpointing=false",
    ],  # else Lightning adds its own
    "validation off": ["+trainer.limit_val_batches=0"],
    "W&B logger off": ["logger=none"],
    "epoch log lines off": ["trainer.enable_progress_bar=false"],
}
ALL_OFF = list(dict.fromkeys(o for overrides in PIECES.values() for o in overrides))
# row -> the overrides that put back what an earlier default did, to weigh a change in one run
BEFORE = {
    # Lightning's own ModelCheckpoint serialises the epoch's state twice (epoch file, then last.ckpt),
    # where the default EpochCheckpoint writes it once and makes last.ckpt a hard link to it.
    "last.ckpt serialised again (Lightning's ModelCheckpoint)": [
        "callbacks.model_checkpoint._target_=pytorch_lightning.callbacks.ModelCheckpoint",
        "~callbacks.model_checkpoint.min_interval_seconds",  # EpochCheckpoint's own argument
    ],
    # the epoch checkpoint at every epoch's end, where the default writes once the last one is 30 s old
    "epoch checkpoint every epoch": ["callbacks.model_checkpoint.min_interval_seconds=null"],
}


def rows(epochs: int, base_tree: Path | None = None) -> dict[str, tuple[list[str], dict[str, str]]]:
    """row name -> (python argv, extra environment)."""
    passive, active = {"OMP_WAIT_POLICY": "PASSIVE"}, {"OMP_WAIT_POLICY": "ACTIVE"}
    cli = [*CLI, *BASE, f"trainer.max_epochs={epochs}"]
    child = [str(Path(__file__).resolve()), "--child"]
    out = {"bare loop": ([*child, "bare", "--epochs", str(epochs)], passive), "sae-train": (cli, passive)}
    if base_tree is not None:  # the same command from another checkout: a change's before and after in one run
        out[f"sae-train, {base_tree.name}"] = (cli, {**passive, "PYTHONPATH": str(base_tree.resolve())})
    out.update({f"sae-train, {name}": ([*cli, *overrides], passive) for name, overrides in PIECES.items()})
    out.update({f"sae-train, {name}": ([*cli, *overrides], passive) for name, overrides in BEFORE.items()})
    out["sae-train, all of them off"] = ([*cli, *ALL_OFF], passive)
    # bf16 on an AMX CPU: autocast (the encoder matmul in bf16, the sparse products in float32),
    # and the knob that picks the k latents alone in bf16 (values float32)
    out["sae-train, +trainer.precision=bf16-mixed"] = ([*cli, "+trainer.precision=bf16-mixed"], passive)
    out["sae-train, sae.select_dtype=bfloat16"] = ([*cli, "sae.select_dtype=bfloat16"], passive)
    out["bare loop, OMP_WAIT_POLICY=ACTIVE"] = ([*child, "bare", "--epochs", str(epochs)], active)
    out["sae-train, OMP_WAIT_POLICY=ACTIVE"] = (cli, active)
    try:
        import sparsify  # noqa: F401
    except ImportError:
        print("eai-sparsify is not installed (make bench installs .[bench]): no sparsify row", file=sys.stderr)
    else:
        out["sparsify, batch 512"] = ([*child, "sparsify", "--epochs", str(epochs)], passive)
    return out


def measure(argv: list[str], env_extra: dict[str, str], scratch: Path) -> tuple[float, float | None]:
    """Seconds of training, read from what the process leaves: sae-train's metrics.json, or the
    child's last printed line; and sae-train's final fve (None for the loops)."""
    logs = Path(tempfile.mkdtemp(dir=scratch))
    cli = argv[:2] == CLI
    env = {**os.environ, "PYTHONPATH": str(ROOT), **env_extra, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}
    full = [sys.executable, *argv, *([f"paths.log_dir={logs}"] if cli else [])]
    done = subprocess.run(full, cwd=scratch, env=env, capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{argv} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    fve = None
    if cli:
        metrics = json.loads(next(logs.glob("train/runs/*/*/metrics.json")).read_text())
        seconds, fve = metrics["timings_s"]["fit"], metrics["metrics"]["fve"]
    else:
        last = json.loads(done.stdout.strip().splitlines()[-1])
        seconds, fve = last["seconds"], last.get("fve")
    shutil.rmtree(logs, ignore_errors=True)
    return float(seconds), fve


def val_fve(recon, rows) -> float:
    """sae-train's val/fve (SAEModule's sums over the validation rows, in one batch as its 8192 rows
    hold them), of a loop's recon fn."""
    import torch

    from sae_lightning.training.module import fve_from_sums, reconstruction_stats

    x = torch.from_numpy(rows)
    with torch.no_grad():
        stats = reconstruction_stats(x, recon(x))
    return float(fve_from_sums(stats["sse"], stats["sq"], x.sum(0), float(len(x))))


def child(kind: str, epochs: int) -> None:
    """One timed loop in this fresh process, over the training rows the DataModule would use."""
    from sae_lightning import runtime

    # What sae-train applies, before torch loads OpenMP (the environment's OMP_WAIT_POLICY wins).
    runtime.apply(runtime.RuntimeSettings())
    import numpy as np
    import torch
    from bench_training import builtin_store, compose, train_bare, train_sparsify

    from sae_lightning.data.datamodule import BatchIndexSampler, split_indices

    cfg = compose(3072, None)
    store = builtin_store(None)
    train_idx, val_idx = split_indices(len(store), float(cfg.data.val_fraction), int(cfg.seed))
    X = torch.from_numpy(np.asarray(store.embeddings[train_idx], dtype=np.float32))  # sorted rows
    bs, seed = int(cfg.data.batch_size), int(cfg.seed)
    steps = epochs * (len(X) // bs)  # drop_last, as the DataModule
    fve = None
    start = time.perf_counter()
    if kind == "bare":
        # sae-train's work exactly: its seed, its b_dec sample (the first training rows), its batches
        # (the DataModule's sampler, epoch by epoch), under Trainer(deterministic=True)'s flag; so
        # AuxK runs on the same steps and the fve below is sae-train's.
        torch.use_deterministic_algorithms(True)
        sampler = BatchIndexSampler(train_idx, bs, True, seed, True)

        def batches():
            for epoch in range(epochs):
                sampler.set_epoch(epoch)
                for rows in sampler:
                    yield X[torch.from_numpy(np.searchsorted(train_idx, rows))]

        recon, _ = train_bare(cfg, X, steps, batches(), X[: int(cfg.module.init_sample_size)])
        seconds = time.perf_counter() - start
        fve = val_fve(recon, np.asarray(store.embeddings[val_idx], dtype=np.float32))
    else:
        train_sparsify(X, int(cfg.sae.d_sae), bs, steps)
        seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "steps": steps, "fve": fve}))


def run(args) -> dict:
    specs = {
        name: spec
        for name, spec in rows(args.epochs, args.base_tree).items()
        if (not args.only or any(sel in name for sel in args.only)) and not any(sel in name for sel in args.skip)
    }
    scratch = Path(tempfile.mkdtemp(prefix="bench_overhead_"))
    times: dict[str, list[float]] = {name: [] for name in specs}
    fves: dict[str, float | None] = {}
    loads: dict[str, list[float]] = {name: [] for name in specs}
    try:
        for r in range(args.rounds):
            for name, (argv, env_extra) in specs.items():
                before = os.getloadavg()[0]
                seconds, fves[name] = measure(argv, env_extra, scratch)  # seeded: the same fve every round
                times[name].append(seconds)
                loads[name].append(round((before + os.getloadavg()[0]) / 2, 2))
                print(
                    json.dumps(
                        {"round": r, "row": name, "seconds": round(times[name][-1], 2), "load": loads[name][-1]}
                    ),
                    flush=True,
                )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    bare = statistics.median(times["bare loop"]) if "bare loop" in times else None
    cli = statistics.median(times["sae-train"]) if "sae-train" in times else None
    table = []
    for name in specs:
        t = statistics.median(times[name])
        table.append(
            {
                "row": name,
                "fit s (median)": round(t, 2),
                "each round": ", ".join(f"{x:.1f}" for x in times[name]),
                "× bare loop": round(t / bare, 2) if bare else None,
                "sae-train minus this (s)": round(cli - t, 2) if cli and name.startswith("sae-train,") else None,
                "fve": round(fves[name], 4) if fves.get(name) is not None else None,
                "load (1 min)": ", ".join(f"{x:.1f}" for x in loads[name]),
            }
        )
    return {"machine": machine(), "epochs": args.epochs, "rounds": args.rounds, "rows": table}


def markdown(result: dict) -> str:
    m = result["machine"]
    t = {r["row"]: r["fit s (median)"] for r in result["rows"]}
    ratios = [
        f"sae-train's speed is {t[name] / t['sae-train']:.2f}× the {name}'s"
        for name in ("bare loop", "sparsify, batch 512")
        if name in t and "sae-train" in t
    ]
    title = (
        f"### sae-train's fit against the bare loop, piece by piece ({result['epochs']} epochs of the built-in "
        f"sentences, TopK 3072/{K}, batch 512; median of {result['rounds']} interleaved rounds, one process at a "
        f"time, {m['cores']} cores, {m['cpu']})"
    )
    note = (
        "`sae-train minus this` is what the piece that row turns off costs (negative: noise larger than the "
        "piece); the load column is the 1-minute load average around each round's process."
    )
    return "\n".join([title, "", note, "", md_table(result["rows"]), "", "; ".join(ratios) + "." if ratios else ""])


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        ap = argparse.ArgumentParser()
        ap.add_argument("kind", choices=["bare", "sparsify"])
        ap.add_argument("--epochs", type=int, required=True)
        a = ap.parse_args(sys.argv[2:])
        return child(a.kind, a.epochs)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=4, help="passes over the built-in sentences (57 steps each)")
    ap.add_argument("--rounds", type=int, default=2, help="times each row runs (interleaved); the table has the median")
    ap.add_argument("--only", nargs="+", default=None, help="substrings of the row names to run")
    ap.add_argument("--skip", nargs="+", default=[], help="substrings of the row names not to run")
    ap.add_argument(
        "--base-tree",
        type=Path,
        default=None,
        help="another checkout of the project (e.g. a `git worktree` of main): adds a row 'sae-train, <its folder "
        "name>' running sae-train from it, to weigh a change before and after in one run",
    )
    common.run_and_emit(ap, run, markdown)


if __name__ == "__main__":
    main()
