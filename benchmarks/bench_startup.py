"""How long each command takes when it has little to do: start-up is mostly imports.

    python benchmarks/bench_startup.py [--baseline REF] [--run RUN_DIR] [--rounds 5]

Each command runs in a fresh process with its wall time taken from outside, as a user waits for it:
the Hydra commands' `--help` (`sae-train`, `sae-embed`, `sae-label`), `sae-embed` on the built-in
store already in the cache, `sae-search` for one query and `sae-diff` of two domains on a finished
run (the newest under outputs/train/runs/, or --run), then the floors of sae-search (FLOORS: torch,
sentence-transformers, and the model alone by each path, this checkout only). The same commands run from the code
at `--baseline` (a git ref, extracted to a temp folder and put first on PYTHONPATH), interleaved with
this checkout's, `--rounds` times; the table gives the medians. The load average is printed with
them: on shared cores, compare the ratio. `--only help` times the rows whose name holds `help`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
from common import ROOT, machine, md_table

BEFORE_LAZY_IMPORTS = "21b2323"  # the last commit before the commands imported lazily
QUERY = "the fall of the Roman empire"


def newest_run() -> Path | None:
    done = sorted(
        (p.parent for p in (ROOT / "outputs" / "train" / "runs").glob("*/*/features.parquet")),
        key=lambda p: p.stat().st_mtime,
    )
    return done[-1] if done else None


def run_domains(run: Path) -> list[str]:
    from sae_lightning.data.store import EmbeddingStore
    from sae_lightning.run_reader import finished_run_info

    return list(EmbeddingStore(finished_run_info(run)["store_path"]).manifest.get("domains", []))


def commands(run: Path | None, scratch: Path) -> dict[str, list[str]]:
    """name -> python code's argv (an entry point called as its console script would be)."""

    def entry(module: str, func: str, prog: str, *argv: str) -> list[str]:
        return ["-c", f"import sys; sys.argv = {[prog, *argv]!r}; from {module} import {func}; sys.exit({func}())"]

    out = {
        "sae-train --help": entry("sae_lightning.cli", "train", "sae-train", "--help"),
        "sae-embed --help": entry("sae_lightning.cli", "embed", "sae-embed", "--help"),
        "sae-label --help": entry("sae_lightning.cli", "label", "sae-label", "--help"),
        "sae-embed (store in the cache)": entry("sae_lightning.cli", "embed", "sae-embed"),
    }
    if run is not None:
        out["sae-search (one query)"] = entry("sae_lightning.cli", "search", "sae-search", str(run), QUERY)
        a, b = run_domains(run)[:2]
        out["sae-diff (two domains)"] = entry(
            "sae_lightning.diff.cli", "main", "sae-diff", str(run), a, b, "--out", str(scratch / "diff-{n}")
        )
    return out


# What any sae-search must wait for before its own work, each in a fresh process of this checkout:
# the rows under the commands, so the table shows how much of sae-search is ours.
FLOORS = {
    "floor: import torch": "import torch",
    "floor: import sentence_transformers (torch, transformers, scikit-learn inside)": "import sentence_transformers",
    "floor: import sentence_transformers, scikit-learn and scipy.optimize deferred (lean_imports.py)": (
        "from sae_lightning.lean_imports import defer_heavy_helpers\n"
        "defer_heavy_helpers()\nimport sentence_transformers"
    ),
    "floor: the model loaded by sentence-transformers and one query embedded": (
        "from sae_lightning.data.embed import load_model; load_model().encode(['a query'])"
    ),
    "floor: the model loaded by the lean encoder (what sae-search runs) and one query embedded": (
        "from sae_lightning.data import lean_encoder\nfrom sae_lightning.data.embed import resolve_model\n"
        "lean_encoder.load(resolve_model('default')).encode(['a query'])"
    ),
}


def timed(argv: list[str], code_root: Path, cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(code_root), "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{argv} failed ({done.returncode}) from {code_root}:\n{done.stderr[-2000:]}")
    return wall


def extract(ref: str, into: Path) -> Path:
    """The package and conf/ as they were at `ref` (pyproject.toml marks the folder a checkout)."""
    archive = subprocess.run(
        ["git", "archive", ref, "sae_lightning", "conf", "pyproject.toml"], cwd=ROOT, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def run(args) -> dict:
    run_dir = Path(args.run) if args.run else newest_run()
    load_before = os.getloadavg()[0]
    scratch = Path(tempfile.mkdtemp(prefix="bench_startup_"))
    try:
        sides = {"after": ROOT}
        if args.baseline:
            sides = {"before": extract(args.baseline, Path(tempfile.mkdtemp(dir=scratch))), **sides}
        cmds = {k: v for k, v in commands(run_dir, scratch).items() if not args.only or any(o in k for o in args.only)}
        floors = {name: ["-c", code] for name, code in FLOORS.items()} if run_dir is not None and args.floors else {}
        times: dict[tuple[str, str], list[float]] = {}
        n = 0
        for r in range(args.rounds + 1):  # round 0 warms the caches (and builds the store if missing)
            for name, argv in [*cmds.items(), *floors.items()]:
                for side, code_root in sides.items() if name in cmds else [("after", ROOT)]:
                    n += 1
                    wall = timed([a.replace("{n}", str(n)) for a in argv], code_root, scratch)
                    if r:
                        times.setdefault((name, side), []).append(wall)
        rows = []
        for name in [*cmds, *floors]:
            row = {"command": name}
            for side in sides:
                row[f"{side} (s)"] = round(statistics.median(times[(name, side)]), 2) if (name, side) in times else None
            if row.get("before (s)"):
                row["after / before"] = round(row["after (s)"] / row["before (s)"], 2)
            rows.append(row)
        return {
            "machine": machine(),
            "load": [load_before, os.getloadavg()[0]],
            "baseline": args.baseline,
            "run": str(run_dir) if run_dir else None,
            "rounds": args.rounds,
            "rows": rows,
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"Start-up, median of {result['rounds']} fresh processes each, interleaved; before = `{result['baseline']}`, "
        f"after = this checkout; run: `{result['run']}`. Load average before/after: "
        f"{result['load'][0]:.2f} / {result['load'][1]:.2f} (1 min) on {m['cores']} cores.",
        "",
        md_table(result["rows"]),
    ]
    if result["run"] is None:
        lines.append(
            "\n(no finished run under outputs/train/runs/: sae-search and sae-diff not measured; `make run` first)"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default=BEFORE_LAZY_IMPORTS, help="git ref to compare with ('' for none)")
    ap.add_argument("--run", default=None, help="a finished run dir (default: the newest under outputs/train/runs/)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", nargs="+", default=None, help="substrings of the row names to run")
    ap.add_argument(
        "--no-floors", dest="floors", action="store_false", help="skip the floor rows (what sae-search waits for)"
    )
    common.run_and_emit(ap, run, markdown)


if __name__ == "__main__":
    main()
