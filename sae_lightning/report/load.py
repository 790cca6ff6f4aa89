"""Read one run directory into plain Python/numpy objects for the report.

Only metrics.json and the current labelling's features.parquet are required (found through
RunDir): without them the run is not finished and we fail with one line that names the missing file. Everything else (SAE weights, cfg.json,
sparsity, families, Hydra config, optional feature columns) is optional: a missing piece turns
into "not available" on the page instead of an error, because reports are also written for
runs that were stopped early or trained elsewhere.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..run_dir import Labeling, RunDir


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


def _not_finished(path: Path, run_dir: Path) -> FileNotFoundError:
    return FileNotFoundError(
        f"{path.name} not found in {run_dir}: the run is not finished "
        "(write_report needs metrics.json and features.parquet)"
    )


def _results(run: RunDir, labeling: Labeling | None) -> dict[str, Any]:
    """RunDir.results(), with its one-line errors as the ValueError the report raises."""
    from ..errors import UserError

    try:
        return run.results(labeling)
    except UserError as e:
        raise ValueError(str(e)) from None


def read_table(path: Path) -> dict[str, list]:
    """A parquet file as {column: list}; pyarrow's to_pylist keeps list columns as Python lists."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for truncated/corrupt files
        raise ValueError(f"{path} could not be read as parquet ({e}); the run may not be finished") from None
    return {name: table.column(name).to_pylist() for name in table.column_names}


def _parse_shares(v: Any) -> dict[str, float]:
    # domain_shares is a JSON string by contract; accept a dict/map column too.
    if v is None:
        return {}
    if isinstance(v, str):
        if not v.strip():
            return {}
        try:
            v = json.loads(v)
        except ValueError:
            return {}
    if isinstance(v, list):  # pyarrow map<str,float> -> list of (key, value) tuples
        v = dict(v)
    if not isinstance(v, dict):
        return {}
    out = {}
    for k, s in v.items():
        try:
            s = float(s)
        except (TypeError, ValueError):
            continue
        if math.isfinite(s) and s > 0:
            out[str(k)] = s
    return out


def _load_tensor(path: Path, key: str) -> np.ndarray | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            return f.get_tensor(key) if key in f.keys() else None
    except (TypeError, ValueError):
        # numpy has no bfloat16: go through torch for such files (torch is a dependency anyway).
        with safe_open(str(path), framework="pt") as f:
            return f.get_tensor(key).float().numpy() if key in f.keys() else None


def load_run(run_dir: str | Path, labeling: Labeling | None = None) -> RunData:
    """The run with its current labelling, or with `labeling` (one not yet made current)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run dir {run_dir} does not exist")
    run = RunDir(run_dir)
    labeling = labeling or run.labeling()
    for p in (run.metrics_file, labeling.features if labeling else run / Labeling.FEATURES):
        if not p.is_file():
            raise _not_finished(p, run_dir)
    metrics = _results(run, labeling)
    cols = read_table(labeling.features)
    n = len(next(iter(cols.values()))) if cols else 0
    notes: list[str] = []

    cfg: dict[str, Any] = {}
    cfg_path = run.sae / RunDir.SAE_CFG
    if cfg_path.is_file():
        try:
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
            cfg.update(cfg.get("sae_lightning") or {})  # our names (relu), over SAELens' (standard)
        except ValueError as e:
            notes.append(f"{cfg_path.relative_to(run_dir)} unreadable: {e}")

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
        sp_path = run.sae / RunDir.SPARSITY
        if sp_path.is_file():
            try:
                sp = _load_tensor(sp_path, "sparsity")
                if sp is not None and n and feature_id.max() < sp.shape[0] and feature_id.min() >= 0:
                    density = np.where(np.isnan(density), np.power(10.0, sp.astype(np.float64)[feature_id]), density)
            except Exception as e:  # optional file: note it, keep going
                notes.append(f"{sp_path.relative_to(run_dir)} unreadable: {e}")
    with np.errstate(divide="ignore", invalid="ignore"):
        log10_density = np.log10(density)  # 0 -> -inf, which the histogram counts as dead

    if "dead" in cols:
        dead = np.array([bool(v) for v in cols["dead"]], dtype=bool)
    else:
        dead = density == 0  # NaN compares False: unknown density is not called dead
        reasons = cols.get("label_reason")
        if reasons is not None:
            dead |= np.array([r == "dead" for r in reasons], dtype=bool)

    shares_col = cols.get("domain_shares")
    domain_shares = [_parse_shares(v) for v in shares_col] if shares_col is not None else [{} for _ in range(n)]

    W_dec = None
    w_path = run.sae / RunDir.SAE_WEIGHTS
    if w_path.is_file():
        try:
            W_dec = _load_tensor(w_path, "W_dec")
            d_sae = cfg.get("d_sae")
            if W_dec is not None and W_dec.ndim == 2 and d_sae and W_dec.shape[0] != d_sae and W_dec.shape[1] == d_sae:
                W_dec = W_dec.T  # stored [d_in, d_sae] by some other tool
            if W_dec is not None:
                W_dec = np.asarray(W_dec, dtype=np.float32)
        except Exception as e:
            notes.append(f"{w_path.relative_to(run_dir)} unreadable: {e}")
            W_dec = None

    families = None
    fam_path = labeling.families
    if fam_path.is_file():
        try:
            families = read_table(fam_path)
        except ValueError as e:
            notes.append(str(e))

    hydra_config = None
    hc = run.hydra_config
    if hc.is_file():
        hydra_config = hc.read_text(encoding="utf-8", errors="replace")

    return RunData(
        run_dir=run_dir, metrics=metrics, cols=cols, n=n, feature_id=feature_id, dead=dead,
        density=density, log10_density=log10_density, domain_shares=domain_shares, cfg=cfg,
        W_dec=W_dec, families=families, hydra_config=hydra_config, notes=notes,
    )
