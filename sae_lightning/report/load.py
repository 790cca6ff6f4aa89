"""Read one run directory into plain Python/numpy objects for the report.

Only metrics.json and the current labelling's features.parquet are required (read through
run_reader.RunReader): without them the run is not finished and we fail with one UserError line
that names the missing file. Everything else (SAE weights, cfg.json,
sparsity, families, Hydra config, optional feature columns) is optional: a missing piece turns
into "not available" on the page instead of an error, because reports are also written for
runs that were stopped early or trained elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..labeling import relabel_fix
from ..run_dir import Labeling, RunDir
from ..run_reader import RunReader
from ..run_schema import VERDICTS


@dataclass
class RunData:
    run_dir: Path
    metrics: dict[str, Any]  # RunDir.results(): the training metrics and the current labelling's summary
    cols: dict[str, list]  # features.parquet, column name -> Python list (one entry per row)
    n: int  # rows of features.parquet
    feature_id: np.ndarray  # int64 [n]
    dead: np.ndarray  # bool [n]
    density: np.ndarray  # float64 [n], NaN when unknown
    log10_density: np.ndarray  # float64 [n], -inf for density 0, NaN when unknown
    domain_shares: list[dict[str, float]]  # parsed per row ({} when unknown)
    cfg: dict[str, Any] = field(default_factory=dict)
    W_dec: np.ndarray | None = None  # [d_sae, d_in]
    families: dict[str, list] | None = None
    hydra_config: str | None = None
    notes: list[str] = field(default_factory=list)  # optional files that could not be read

    def col(self, name: str) -> list | None:
        return self.cols.get(name)

    def floats(self, name: str) -> np.ndarray | None:
        """A numeric column as float64 with None -> NaN, or None when the column is absent."""
        c = self.cols.get(name)
        if c is None:
            return None
        return np.array([np.nan if v is None else v for v in c], dtype=np.float64)


def report_data(run: str | Path | RunReader, labeling: Labeling | None = None) -> RunData:
    """The run (a folder, or a reader of it) with its current labelling, or with `labeling` (one
    not yet made current)."""
    reader = run if isinstance(run, RunReader) else RunReader(run, labeling)
    run_dir = reader.root
    if not run_dir.is_dir():
        raise UserError(f"run dir {run_dir} does not exist; pass a finished run folder")
    labeling = reader.labeling
    for p in (reader.dir.metrics_file, labeling.features if labeling else run_dir / Labeling.FEATURES):
        if not p.is_file():
            raise UserError(
                f"{p.name} not found in {run_dir}: the run is not finished "
                "(write_report needs metrics.json and features.parquet)"
            )
    metrics = reader.dir.results(labeling)
    cols = reader.feature_columns
    n = len(next(iter(cols.values()))) if cols else 0
    # The labelling writes one of VERDICTS per feature (labels/scoring/verdict.py); a table without
    # them was not written by this version's labelling.
    unknown = sorted({str(v) for v in cols["verdict"]} - set(VERDICTS)) if "verdict" in cols else ["no column"]
    if unknown:
        raise UserError(
            f"{labeling.features} has no verdicts this version knows ({', '.join(unknown[:3])}); {relabel_fix(run_dir)}"
        )
    notes: list[str] = []

    def optional(read, what: str):
        """An optional file: None and a note on the page when it cannot be read."""
        try:
            return read()
        except UserError as e:
            notes.append(f"{what} unreadable: {e}")
            return None

    cfg: dict[str, Any] = {}
    if (reader.dir.sae / RunDir.SAE_CFG).is_file():
        cfg = optional(lambda: reader.cfg, f"{RunDir.SAE}/{RunDir.SAE_CFG}") or {}

    fid = cols.get("feature_id")
    feature_id = np.arange(n, dtype=np.int64) if fid is None else np.asarray(fid, dtype=np.int64)

    # Density: the features table first, then the SAELens sparsity file (log10 density per feature).
    density = np.full(n, np.nan)
    if "density" in cols:
        density = np.array([np.nan if v is None else v for v in cols["density"]], dtype=np.float64)
    if "log10_density" in cols:
        log10 = np.array([np.nan if v is None else v for v in cols["log10_density"]], dtype=np.float64)
        density = np.where(np.isnan(density), np.power(10.0, log10), density)
    if np.isnan(density).any():
        sp = optional(lambda: reader.log10_density, f"{RunDir.SAE}/{RunDir.SPARSITY}")
        if sp is not None and n and feature_id.max() < sp.shape[0] and feature_id.min() >= 0:
            density = np.where(np.isnan(density), np.power(10.0, sp.astype(np.float64)[feature_id]), density)
    with np.errstate(divide="ignore", invalid="ignore"):
        log10_density = np.log10(density)  # 0 -> -inf, which the histogram counts as dead

    if "dead" in cols:
        dead = np.array([bool(v) for v in cols["dead"]], dtype=bool)
    else:
        dead = density == 0  # NaN compares False: unknown density is not called dead

    domain_shares = reader.domain_shares or [{} for _ in range(n)]
    W_dec = None
    if (reader.dir.sae / RunDir.SAE_WEIGHTS).is_file():
        W_dec = optional(lambda: reader.W_dec, f"{RunDir.SAE}/{RunDir.SAE_WEIGHTS}")
    families = optional(lambda: reader.families, str(labeling.families))
    hydra_config = None
    hc = reader.dir.hydra_config
    if hc.is_file():
        hydra_config = hc.read_text(encoding="utf-8", errors="replace")

    return RunData(
        run_dir=run_dir,
        metrics=metrics,
        cols=cols,
        n=n,
        feature_id=feature_id,
        dead=dead,
        density=density,
        log10_density=log10_density,
        domain_shares=domain_shares,
        cfg=cfg,
        W_dec=W_dec,
        families=families,
        hydra_config=hydra_config,
        notes=notes,
    )
