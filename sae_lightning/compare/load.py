"""Find finished run dirs (one, several, or a Hydra sweep dir of them) and read what a comparison
needs from each: decoder directions, which features are live, labels, domain shares.

Only the run's files are read (docs/run-folder.md), never its store or its model, so
runs trained on another machine can be compared as long as their folders are here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..run_dir import RunDir
from ..run_reader import RunReader

log = logging.getLogger(__name__)


@dataclass
class RunSAE:
    """One run, as far as a comparison is concerned."""

    path: Path
    name: str  # unique among the compared runs: shown in tables, the heatmap and the page
    domain: str  # run.json's domain (the config name, e.g. wiki_mathematics)
    store_domains: list[str]  # the domains of the texts it was trained on (cfg.json metadata)
    model_name: str
    d_in: int
    d_sae: int
    architecture: str
    k: int | None
    W_dec: np.ndarray  # [d_sae, d_in] float32, rows unit-norm
    live: np.ndarray  # [d_sae] bool: fired at least once (features.parquet, else sparsity)
    labels: list[str]  # "" where unlabelled or no features.parquet
    density: np.ndarray  # [d_sae] float64, NaN when unknown
    shares: list[dict[str, float]] = field(default_factory=list)  # per feature, [] without a table
    metrics: dict = field(default_factory=dict)

    @property
    def joint(self) -> bool:
        """Trained on texts of several domains (e.g. domain=wiki_all): its features' domain shares
        say which domains they serve."""
        return len(self.store_domains) > 1


def is_run_dir(path: Path) -> bool:
    run = RunDir(path)
    return run.run_file.is_file() or (run.sae / RunDir.SAE_CFG).is_file()


def _missing(path: Path) -> list[str]:
    return RunDir(path).missing()


def find_run_dirs(paths: Sequence[str | Path]) -> tuple[list[Path], Path | None]:
    """The finished run dirs among `paths`, and the sweep dir when one was given alone.

    A path is a run dir itself, or a folder (a Hydra multirun sweep dir) whose subfolders, up to
    two levels down, are run dirs. Unfinished runs of a sweep are skipped with a warning; an
    unfinished run named directly is an error, since the user asked for that one."""
    if not paths:
        raise UserError("give a sweep dir or at least one run dir to compare")
    found: list[tuple[Path, str | Path]] = []  # each run and the argument that named it
    sweep = None
    for raw in paths:
        if not str(raw).strip():  # `sae-compare "$RUN"` with RUN unset: Path("") is the current folder
            raise UserError("an empty run path; give a sweep dir or run dirs (folders holding run.json and sae/)")
        path = Path(raw).expanduser()
        if not path.is_dir():
            what = "a file, not a folder" if path.exists() else "no such folder"
            raise UserError(f"{path}: {what}; give a sweep dir or run dirs (folders holding run.json and sae/)")
        RunDir(path).check_readable()  # is_run_dir's is_file lets a PermissionError through
        if is_run_dir(path):
            missing = _missing(path)
            if missing:
                raise UserError(f"{path} is not a finished run (missing {', '.join(missing)})")
            found.append((path, raw))
            continue
        sweep = path if len(paths) == 1 else None
        marks = (RunDir.RUN, f"{RunDir.SAE}/{RunDir.SAE_CFG}")
        candidates = sorted(
            {p.parents[mark.count("/")] for mark in marks for p in [*path.glob(f"*/{mark}"), *path.glob(f"*/*/{mark}")]}
        )
        finished = []
        for c in candidates:
            try:
                missing = _missing(c)
            except UserError as err:  # another user's run in the sweep: skipped like an unfinished one
                log.warning("skipping %s: %s", c, err)
                continue
            if missing:
                log.warning("skipping %s: not finished (missing %s)", c, ", ".join(missing))
            else:
                finished.append(c)
        if not finished:
            raise UserError(
                f"{path} holds no finished run (a run dir has run.json, sae/cfg.json, "
                f"sae/sae_weights.safetensors and metrics.json; {len(candidates)} unfinished found)"
            )
        found.extend((c, raw) for c in finished)
    return _each_once(found), sweep


def _each_once(found: list[tuple[Path, str | Path]]) -> list[Path]:
    """The runs, resolved, refused when one comes twice (named twice, through a link, or named and
    inside a sweep dir also given). A run compared with itself matches every feature at cosine 1,
    so its "shared" counts say nothing; dropping the copy silently compared fewer runs than asked."""
    seen: dict[Path, str | Path] = {}
    for path, raw in found:
        real = path.resolve()
        if real in seen:
            how = "is given twice" if str(seen[real]) == str(raw) else f"comes from both {seen[real]} and {raw}"
            raise UserError(
                f"the run {real} {how}; give each run once: a run compared with itself shares every feature"
            )
        seen[real] = raw
    return list(seen)


def load_run_sae(run: Path | RunReader) -> RunSAE:
    """The run (a folder, or a reader of it) as a comparison sees it."""
    reader = run if isinstance(run, RunReader) else RunReader(run)
    path, folder = reader.root, reader.dir
    cfg = reader.cfg
    info = folder.run_info() if folder.run_file.is_file() else {}
    meta = cfg.get("metadata") or {}
    W = reader.W_dec
    W = W / np.maximum(np.linalg.norm(W, axis=1, keepdims=True), 1e-12)
    d_sae = W.shape[0]
    live, density = np.ones(d_sae, bool), np.full(d_sae, np.nan)
    labels, shares = [""] * d_sae, []
    if reader.labeling is not None:
        df = reader.features.assign(domain_shares=reader.domain_shares) if reader.domain_shares else reader.features
        df = df.set_index("feature_id").reindex(range(d_sae)) if "feature_id" in df else df
        if "dead" in df:
            live = ~df["dead"].fillna(True).astype(bool).to_numpy()
        if "density" in df:
            density = df["density"].astype(float).to_numpy()
        if "label" in df:
            labels = [str(s) if isinstance(s, str) else "" for s in df["label"]]
        if "domain_shares" in df:
            shares = [s if isinstance(s, dict) else {} for s in df["domain_shares"]]
    else:  # no labels: the dead-feature statistics of training still tell live from dead
        log10 = reader.log10_density
        if log10 is not None and log10.shape == (d_sae,):
            live, density = np.isfinite(log10), np.power(10.0, log10.astype(np.float64))
    metrics = folder.results(reader.labeling) if folder.metrics_file.is_file() else {}  # training + label summary
    return RunSAE(
        path=path,
        name="",
        domain=str(info.get("domain") or meta.get("domain") or path.name),
        store_domains=[str(d) for d in meta.get("domains") or []],
        model_name=str(meta.get("model_name") or info.get("model_name") or "unknown"),
        d_in=int(cfg.get("d_in", W.shape[1])),
        d_sae=d_sae,
        architecture=str(cfg.get("architecture", "?")),
        k=cfg.get("k"),
        W_dec=W.astype(np.float32),
        live=live,
        labels=labels,
        density=density,
        shares=shares,
        metrics=metrics,
    )


def name_runs(runs: list[RunSAE]) -> None:
    """Name each run by what it was trained on: its one text domain (e.g. "Mathematics") when it
    has one, else its domain config; folder names break ties (two seeds of one domain)."""
    base = [r.store_domains[0] if len(r.store_domains) == 1 else r.domain for r in runs]
    for r, b in zip(runs, base):
        r.name = b if base.count(b) == 1 else f"{b} ({r.path.name})"
    names = [r.name for r in runs]
    for i, r in enumerate(runs):  # same folder name under different sweeps: number them
        if names.count(r.name) > 1:
            r.name = f"{r.name} #{i}"


def check_comparable(runs: list[RunSAE]) -> None:
    """Decoder directions only compare within one embedding space and at one dictionary size:
    say which property differs and how, run by run."""
    for what, get in (
        ("embedding models", lambda r: r.model_name),
        ("embedding widths (d_in)", lambda r: r.d_in),
        ("SAE widths (d_sae)", lambda r: r.d_sae),
    ):
        values = {get(r) for r in runs}
        if len(values) > 1:
            detail = "; ".join(f"{r.name}: {get(r)}" for r in runs)
            raise UserError(f"cannot compare runs with different {what}: {detail}")


def load_runs(paths: Sequence[str | Path]) -> tuple[list[RunSAE], Path | None]:
    dirs, sweep = find_run_dirs(paths)
    runs = [load_run_sae(p) for p in dirs]
    name_runs(runs)
    check_comparable(runs)
    return runs, sweep
