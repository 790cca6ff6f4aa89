"""Put a diff or a matrix on disk as one folder, written whole or not at all: every file goes
into a temporary sibling folder, which then replaces the target in one rename. Only an empty
folder or an earlier diff is replaced (atomic.check_replaceable): `--out` pointed at a folder of
the user's is refused, before any work, in one line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ..atomic import atomic_folder, check_replaceable
from ..hydra_setup import slug
from ..output_places import check_outside_runs_and_stores
from ..path_checks import check_output_folder
from ..run_dir import RunDir
from .analysis import DiffResult, MatrixResult
from .page import render_diff_page, render_matrix_page


def default_out(res: DiffResult | MatrixResult) -> Path:
    """<run>/diff/<a>-vs-<b>/, or <run>/diff/matrix/."""
    name = "matrix" if isinstance(res, MatrixResult) else f"{slug(res.a)}-vs-{slug(res.b)}"
    return RunDir(res.run_dir).diff_dir(name)


DIFF_PAGE, MATRIX_PAGE, SUMMARY = "diff.html", "matrix.html", "summary.json"
DIFF_TABLES, MATRIX_TABLES = ("diff",), ("matrix", "pairs")
OUT_FIX = "give --out a new or empty folder, or leave --out out for <run>/diff/"


def file_names(matrix: bool) -> set[str]:
    """What a diff (or a matrix) folder holds."""
    tables, page = (MATRIX_TABLES, MATRIX_PAGE) if matrix else (DIFF_TABLES, DIFF_PAGE)
    return {f"{t}.{ext}" for t in tables for ext in ("parquet", "csv")} | {SUMMARY, page}


def check_out(out: str | Path | None, matrix: bool, run_dir: str | Path) -> None:
    """Refuse an --out that cannot be a folder or holds anything but an earlier diff, before the
    analysis runs; without --out, a <run>/diff that cannot hold one (a file, a link to nothing: it
    was a 'File exists' line after the whole analysis)."""
    if out is not None:
        check_output_folder(out, "--out")
        check_outside_runs_and_stores(out, "--out", own=RunDir(run_dir).root / RunDir.DIFF)
        check_replaceable(out, file_names(matrix), OUT_FIX)
    elif Path(run_dir).is_dir():  # else the run's own line, from the analysis
        check_output_folder(RunDir(run_dir).root / RunDir.DIFF, "--out")


def _csv_ready(df: pd.DataFrame) -> pd.DataFrame:
    """Lists (example texts) as one ' | '-joined cell: csv has no list type."""
    out = df.copy()
    for col in out.columns:
        if out[col].map(lambda v: isinstance(v, list)).any():
            out[col] = out[col].map(lambda v: " | ".join(v) if isinstance(v, list) else v)
    return out


def write_folder(out: Path, files: dict[str, Callable[[Path], None]]) -> dict[str, Path]:
    def fill(tmp: Path) -> None:
        for name, write in files.items():
            write(tmp / name)

    atomic_folder(Path(out), fill, OUT_FIX)
    return {name: Path(out) / name for name in files}


def _files(
    tables: dict[str, pd.DataFrame], summary: dict, page_name: str, page: str
) -> dict[str, Callable[[Path], None]]:
    files: dict[str, Callable[[Path], None]] = {}
    for name, df in tables.items():
        files[f"{name}.parquet"] = lambda p, df=df: df.to_parquet(p, index=False)
        files[f"{name}.csv"] = lambda p, df=df: _csv_ready(df).to_csv(p, index=False)
    files[SUMMARY] = lambda p: p.write_text(json.dumps(summary, indent=2, default=str))
    files[page_name] = lambda p: p.write_text(page, encoding="utf-8")
    return files


def write_diff(res: DiffResult, out: str | Path | None = None) -> dict[str, Path]:
    return write_folder(
        Path(out) if out else default_out(res),
        _files(dict(zip(DIFF_TABLES, [res.table])), res.summary(), DIFF_PAGE, render_diff_page(res)),
    )


def write_matrix(res: MatrixResult, out: str | Path | None = None) -> dict[str, Path]:
    matrix = pd.DataFrame(res.separating, index=res.domains, columns=res.domains).rename_axis("domain").reset_index()
    return write_folder(
        Path(out) if out else default_out(res),
        _files(dict(zip(MATRIX_TABLES, [matrix, res.pairs])), res.summary(), MATRIX_PAGE, render_matrix_page(res)),
    )
