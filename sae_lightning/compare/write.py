"""Put a comparison on disk: the tables (parquet + csv), compare.json and compare.html. A folder of
its own is written whole or not at all; into a sweep dir, beside its runs, each file atomically."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_folder, atomic_write, check_replaceable, remove_abandoned
from ..output_places import check_outside_runs_and_stores
from ..path_checks import check_output_folder
from ..run_dir import outputs_root
from .analysis import ComparisonResult
from .page import render_compare_page

TABLES = ("matches", "feature_classes", "domain_counts")  # each as .parquet and .csv
PAGES = ("compare.json", "compare.html")
FILES = frozenset({f"{t}.{ext}" for t in TABLES for ext in ("parquet", "csv")} | set(PAGES))
OUT_FIX = "give --out a new or empty folder (or one an earlier sae-compare wrote), or leave --out out"


def check_out(out: str | Path) -> None:
    """Refuse, before the matching, an --out that cannot be a folder or holds files sae-compare
    does not write (a folder of yours, a run folder, the current folder): the folder is replaced
    by the new comparison, and a file of yours in it would go with it."""
    check_output_folder(out, "--out")
    check_outside_runs_and_stores(out, "--out")
    for stem in {Path(name).stem for name in FILES}:  # what a killed sae-compare left there is its own
        remove_abandoned(Path(out), stem)
    check_replaceable(out, FILES, OUT_FIX)


def summary(result: ComparisonResult) -> dict:
    """compare.json: what the page shows, as numbers."""
    counts = result.class_counts()
    return {
        "settings": result.settings,
        "warnings": result.warnings,
        "runs": [
            {
                "name": r.name,
                "path": str(r.path),
                "domain": r.domain,
                "model_name": r.model_name,
                "d_sae": r.d_sae,
                "architecture": r.architecture,
                "live": int(r.live.sum()),
                "classes": {c: int(counts.loc[r.name, c]) for c in counts.columns},
            }
            for r in result.runs
        ],
        "overlap": {"runs": result.names, "matrix": np.round(result.overlap, 4).tolist()},
        "joint": [
            {
                "run": j.run,
                "domains": j.domains,
                "counts": j.counts.drop(columns="run").to_dict("records"),
                "overlap": j.overlap.tolist(),
            }
            for j in result.joint
        ],
    }


def default_compare_dir(stamp: str) -> Path:
    """Where a comparison of run dirs (not one sweep) goes: outputs/compare/<time>_<pid>-<random>/
    under the root of all run folders (paths.log_dir: $SAE_LIGHTNING_OUTPUTS, else ./outputs), never
    the cwd itself. Named like a run folder: by the time alone, sae-compare commands ending in the
    same second (a script starting several) wrote into one folder, each replacing the others' files.
    Checked before it is resolved: a link to nothing on the way (./outputs -> an unmounted disk)
    was followed, and its target created."""
    from ..hydra_setup import RUN_SUFFIX

    folder = Path(outputs_root()) / "compare" / f"{stamp}_{RUN_SUFFIX}"
    check_output_folder(folder, "--out")
    return folder.resolve()


def write_comparison(result: ComparisonResult, out_dir: str | Path) -> dict[str, Path]:
    """Write the tables (parquet + csv), compare.json and compare.html into out_dir. A new folder,
    an empty one or an earlier comparison's is written whole or not at all (atomic_folder): file by
    file, a kill or a full disk left some tables without their page, or an earlier comparison's
    page beside this one's tables. A folder holding more (a sweep dir, whose runs stay) gets its
    files one by one, each atomically."""
    out = Path(out_dir)
    writers = _writers(result)
    if out.is_dir() and any(p.name not in FILES for p in out.iterdir()):
        _write_beside_others(out, writers)
    else:
        atomic_folder(out, lambda tmp: [write(tmp / name) for name, write in writers.items()], OUT_FIX, own=FILES)
    return {name: out / name for name in writers}


def _writers(result: ComparisonResult) -> dict[str, Callable[[Path], object]]:
    """Each file of the comparison by name, with what writes it to a given path."""
    matches, classes, counts = TABLES
    tables = {matches: result.matches, classes: result.features}
    if result.joint:
        tables[counts] = pd.concat([j.counts for j in result.joint], ignore_index=True)
    writers = {}
    for name, df in tables.items():
        writers[f"{name}.parquet"] = lambda p, df=df: df.to_parquet(p, index=False)
        writers[f"{name}.csv"] = lambda p, df=df: df.to_csv(p, index=False)
    for name, text in zip(PAGES, (json.dumps(summary(result), indent=2, allow_nan=True), render_compare_page(result))):
        writers[name] = lambda p, text=text: p.write_text(text, encoding="utf-8")
    return writers


def _write_beside_others(out: Path, writers: dict[str, Callable[[Path], object]]) -> None:
    # a sweep dir that takes no files (a read-only share) named no way out ("write somewhere you can")
    check_output_folder(out, "--out (the sweep's own folder is only the default)")
    for name in FILES - set(writers):  # an earlier comparison's joint-run table stayed beside this one's files
        (out / name).unlink(missing_ok=True)
    for name, write in writers.items():
        atomic_write(out / name, write)
