"""Where sae-train's fit spends its wall time, piece by piece, in one process per checkout.

    python benchmarks/bench_overhead_pieces.py [--epochs 4] [--rounds 1] [--tree DIR ...]

bench_overhead.py times whole fits and weighs a piece by turning it off; this one times the pieces
inside one fit: each Lightning hook or method below is wrapped with a `time.perf_counter` sum (the
wrappers add ~1 us a call). The fit is bench_overhead's `sae-train` row (labelling off, TopK
3072/32, batch 512, the built-in sentences, `--epochs` passes, everything else the defaults).
`--tree` runs it from other checkouts too (e.g. a `git worktree add --detach` of main), one fresh
process each, interleaved over `--rounds`: a change's pieces before and after in one run. Nested
pieces overlap (the optimiser step holds the training step and the backward pass: Lightning runs
them in its closure); a piece a checkout does not have is left blank."""

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

HERE = Path(__file__).resolve().parent
PIECES = {  # row -> (module, qualified name) wrapped in the child; the first a checkout has counts
    "Trainer.fit": [("pytorch_lightning.trainer.trainer", "Trainer.fit")],
    "training steps, all (Lightning's loop)": [
        ("pytorch_lightning.loops.training_epoch_loop", "_TrainingEpochLoop.advance")
    ],
    "optimiser step (Lightning's closure: step, backward, clipping, Adam)": [
        ("sae_lightning.training.module", "SAEModule.optimizer_step")
    ],
    "training_step (forward, loss, counters, step metrics)": [
        ("sae_lightning.training.module", "SAEModule.training_step")
    ],
    "SAE forward": [("sae_lightning.models.topk", "TopKSAE.forward")],
    "loss terms (fvu, AuxK)": [("sae_lightning.models.topk", "TopKSAE.loss_terms")],
    "backward": [("torch", "Tensor.backward")],
    "gradient projection": [("sae_lightning.training.module", "SAEModule.on_after_backward")],
    "gradient clipping": [("torch.nn.utils", "clip_grad_norm_")],
    "fused Adam": [("torch.optim.adam", "_fused_adam")],
    "decoder renormalisation": [("sae_lightning.models.base", "SparseAutoencoder.set_decoder_norm_to_unit_norm")],
    "fetching the batch": [("pytorch_lightning.loops.fetchers", "_PrefetchDataFetcher.__next__")],
    "NaN/Inf check of each batch (all_finite)": [("sae_lightning.training.module", "all_finite")],
    "divergence check": [
        ("sae_lightning.training.module", "SAEModule.check_not_diverged"),
        ("sae_lightning.training.module", "SAEModule._check_not_diverged"),
    ],
    "step metrics (module)": [("sae_lightning.training.module", "SAEModule._log_step_metrics")],
    "step metrics to the loggers (one call per logging step)": [
        ("sae_lightning.training.module", "SAEModule.on_train_batch_end")
    ],
    "step metrics (DeadFeatureStats)": [
        ("sae_lightning.training.callbacks.dead_features", "DeadFeatureStats.on_train_batch_end")
    ],
    "validation": [("pytorch_lightning.loops.evaluation_loop", "_EvaluationLoop.run")],
    "validation_step (reconstruct, sums)": [("sae_lightning.training.module", "SAEModule.validation_step")],
    "SAE reconstruct": [("sae_lightning.models.topk", "TopKSAE.reconstruct")],
    "validation metrics (reduce, retrieval)": [("sae_lightning.training.module", "SAEModule._validation_metrics")],
    "retrieval search (nearest)": [("sae_lightning.training.module", "nearest")],
    "validation epoch end (metrics, logging)": [("sae_lightning.training.module", "SAEModule.on_validation_epoch_end")],
    "Lightning's eval loop around them (validation minus its step and its epoch end)": [],  # derived, see DERIVED
    "checkpoint writes": [("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint._save_checkpoint")],
    "export (sae/, metrics.json)": [("sae_lightning.training.callbacks.run_export", "RunExport.on_fit_end")],
}

# row -> (whole, parts): the whole's seconds minus its parts', per call of the whole
DERIVED = {
    "Lightning's eval loop around them (validation minus its step and its epoch end)": (
        "validation",
        ["validation_step (reconstruct, sums)", "validation epoch end (metrics, logging)"],
    )
}


def child(tree: str, epochs: int) -> None:
    """One fit of `tree`'s sae-train with the pieces wrapped; prints {row: [seconds, calls]}."""
    import functools
    import importlib

    sys.path.insert(0, tree)
    from sae_lightning import runtime

    runtime.apply(runtime.RuntimeSettings())  # as sae-train does, before torch loads OpenMP
    sums: dict[str, list[float]] = {}

    def wrap(row: str, module: str, qualname: str) -> bool:
        owner_path, _, attr = qualname.rpartition(".")
        try:
            owner = importlib.import_module(module)
            for part in filter(None, owner_path.split(".")):
                owner = getattr(owner, part)
            fn = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)  # not an inherited hook
        except (ImportError, AttributeError, KeyError):
            return False
        total = sums.setdefault(row, [0.0, 0])

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                total[0] += time.perf_counter() - start
                total[1] += 1

        setattr(owner, attr, timed)
        return True

    for row, places in PIECES.items():
        any(wrap(row, module, qualname) for module, qualname in places)
    from sae_lightning.cli import train

    logs = tempfile.mkdtemp(prefix="bench_pieces_")
    sys.argv = [
        "sae-train",
        "labeling.enabled=false",
        "sae.k=32",
        f"trainer.max_epochs={epochs}",
        f"paths.log_dir={logs}",
    ]
    try:
        train()
    except SystemExit as stop:
        if stop.code:
            raise
    finally:
        shutil.rmtree(logs, ignore_errors=True)
    for row, (whole, parts) in DERIVED.items():
        if whole in sums and all(p in sums for p in parts):
            sums[row] = [sums[whole][0] - sum(sums[p][0] for p in parts), sums[whole][1]]
    print(json.dumps(sums))


def run(args) -> dict:
    trees = [str(Path(t).resolve()) for t in (args.tree or [HERE.parent])]
    got: dict[str, list[dict]] = {t: [] for t in trees}
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    for _ in range(args.rounds):
        for tree in trees:
            argv = [sys.executable, __file__, "--child", tree, "--epochs", str(args.epochs)]
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=3600, check=True)
            got[tree].append(json.loads(done.stdout.strip().splitlines()[-1]))
    rows = []
    for row in PIECES:
        line = {"piece": row}
        for tree in trees:
            runs = [r[row] for r in got[tree] if row in r]
            if runs:
                seconds, calls = statistics.median(s for s, _ in runs), runs[0][1]
                line[f"{Path(tree).name}: s"] = round(seconds, 3)
                line[f"{Path(tree).name}: ms a call (calls)"] = f"{1000 * seconds / max(calls, 1):.2f} ({calls})"
        rows.append(line)
    return {"epochs": args.epochs, "rounds": args.rounds, "load": os.getloadavg()[0], "rows": rows}


def markdown(result: dict) -> str:
    from common import md_table

    title = (
        f"### sae-train's fit, piece by piece ({result['epochs']} epochs, TopK 3072/32, batch 512; median of "
        f"{result['rounds']} rounds; 1-minute load at the end {result['load']:.1f})"
    )
    return "\n".join([title, "", md_table(result["rows"])])


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        return child(sys.argv[2], int(sys.argv[sys.argv.index("--epochs") + 1]))
    import common

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=4, help="passes over the built-in sentences (57 steps each)")
    ap.add_argument("--rounds", type=int, default=1, help="fits per checkout (interleaved); the table has the median")
    ap.add_argument("--tree", nargs="+", default=None, help="checkouts to time (default: this one)")
    common.run_and_emit(ap, run, markdown)


if __name__ == "__main__":
    main()
