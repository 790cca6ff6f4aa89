"""sae-diff's analysis: which features of a finished run fire differently in two groups of texts,
and the domain x domain matrix of how many features separate each pair. No HTML here (page.py
renders the results; write.py puts them on disk)."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..conf_dir import command_defaults
from ..errors import UserError
from ..run_reader import RunReader
from ..search import SearchRun, open_run
from .groups import Group, check_groups, check_size, resolve_group, store_group
from .scan import GroupScan, scan_group
from .stats import benjamini_hochberg, fisher_two_sided, log_odds_ratio, separating

# Labelling columns carried into the table when the run has them.
LABEL_COLUMNS = {"label": "", "verdict": "", "coherence": np.nan, "label_score": np.nan}


_DEFAULTS = command_defaults("diff")


@dataclass
class DiffSettings:
    """sae-diff's settings; each one's default and meaning: conf/diff.yaml, its range: validate.py."""

    alpha: float = _DEFAULTS["alpha"]
    min_log_odds: float = _DEFAULTS["min_log_odds"]
    min_texts: int = _DEFAULTS["min_texts"]
    examples: int = _DEFAULTS["examples"]
    batch_size: int = _DEFAULTS["batch_size"]
    top: int = _DEFAULTS["top"]
    seed: int = _DEFAULTS["seed"]


@dataclass
class DiffResult:
    run_dir: Path
    a: str
    b: str
    n_a: int
    n_b: int
    table: pd.DataFrame  # one row per feature, separating ones first (see diff_table)
    settings: DiffSettings
    model_name: str = ""

    def top(self, side: str, n: int | None = None) -> pd.DataFrame:
        """The separating features that fire more in `side` (self.a or self.b), strongest first."""
        rows = self.table[self.table["separating"] & (self.table["more_in"] == side)]
        return rows.head(n or self.settings.top)

    def summary(self) -> dict:
        sep = self.table["separating"]
        return {
            "run_dir": str(self.run_dir),
            "a": self.a,
            "b": self.b,
            "n_a": self.n_a,
            "n_b": self.n_b,
            "model_name": self.model_name,
            "features": int(len(self.table)),
            "separating": int(sep.sum()),
            "more_in_a": int((sep & (self.table["more_in"] == self.a)).sum()),
            "more_in_b": int((sep & (self.table["more_in"] == self.b)).sum()),
            "test": "two-sided Fisher exact (central), Benjamini-Hochberg over all features",
            "settings": asdict(self.settings),
        }


@dataclass
class MatrixResult:
    run_dir: Path
    domains: list[str]
    sizes: list[int]
    separating: np.ndarray  # [D, D] int: features separating each pair (symmetric, 0 diagonal)
    more_in_row: np.ndarray  # [D, D] int: of those, the ones firing more in the row's domain
    settings: DiffSettings
    pairs: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per pair

    def summary(self) -> dict:
        return {
            "run_dir": str(self.run_dir),
            "domains": self.domains,
            "sizes": self.sizes,
            "separating": self.separating.tolist(),
            "more_in_row": self.more_in_row.tolist(),
            "settings": asdict(self.settings),
        }


def open_finished_run(reader: RunReader) -> SearchRun:
    run_dir, missing = reader.root, reader.dir.missing()
    if not run_dir.is_dir() or missing:
        if run_dir.is_dir():
            what = f"is not a finished run (missing {', '.join(missing)})"
        else:
            what = "is a file, not a run folder" if run_dir.exists() else "does not exist"
        raise UserError(
            f"{run_dir} {what}; give a run folder that sae-train completed "
            "(resume an interrupted one with sae-train run_dir=<it> ckpt_path=last)"
        )
    return open_run(reader)


def feature_info(run: Path | RunReader, d_sae: int) -> pd.DataFrame:
    """label, verdict, coherence, label_score per feature of the run's labelling (a folder, or a
    reader of it); blanks where the run is not labelled."""
    info = pd.DataFrame({"feature_id": np.arange(d_sae)})
    df = (run if isinstance(run, RunReader) else RunReader(run)).features
    cols = [c for c in LABEL_COLUMNS if df is not None and c in df]
    if df is not None and "feature_id" in df and cols:
        info = info.merge(df[["feature_id", *cols]].drop_duplicates("feature_id"), on="feature_id", how="left")
    for c, blank in LABEL_COLUMNS.items():
        info[c] = info[c].fillna(blank) if c in info else blank
    return info


def diff_table(
    counts_a: np.ndarray,
    n_a: int,
    counts_b: np.ndarray,
    n_b: int,
    a: str,
    b: str,
    settings: DiffSettings,
    info: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The statistics of every feature (stats.py), separating features first, each ranked by how
    far its log-odds interval stays from 0 (so a rare feature with a wide interval does not
    outrank a frequent one with a certain difference); the rest by q-value."""
    a_counts, b_counts = np.asarray(counts_a, np.int64), np.asarray(counts_b, np.int64)
    lor, lo, hi = log_odds_ratio(a_counts, n_a, b_counts, n_b, settings.alpha)
    p = fisher_two_sided(a_counts, n_a, b_counts, n_b)
    q = benjamini_hochberg(p)
    sep = separating(q, lor, settings.alpha, settings.min_log_odds)
    df = pd.DataFrame(
        {
            "feature_id": np.arange(len(a_counts)),
            "fires_a": a_counts,
            "fires_b": b_counts,
            "rate_a": a_counts / n_a,
            "rate_b": b_counts / n_b,
        }
    )
    df["rate_diff"] = df["rate_a"] - df["rate_b"]
    df["log_odds"], df["log_odds_low"], df["log_odds_high"], df["p_value"], df["q_value"] = lor, lo, hi, p, q
    df["separating"] = sep
    df["more_in"] = np.where(sep, np.where(lor > 0, a, b), "")
    df["strength"] = np.maximum(lo, -hi)  # the interval's distance from 0; > 0 where it excludes 0
    if info is not None:
        df = df.merge(info, on="feature_id", how="left")
    return df.sort_values(
        ["separating", "strength", "q_value"], ascending=[False, False, True], kind="stable"
    ).reset_index(drop=True)


def _add_examples(table: pd.DataFrame, groups: tuple[Group, Group], scans: tuple[GroupScan, GroupScan]) -> None:
    for col, g, s in (("examples_a", groups[0], scans[0]), ("examples_b", groups[1], scans[1])):
        table[col] = [s.examples(g, int(f)) for f in table["feature_id"]]


def diff_groups(run_dir: str | Path, spec_a: str, spec_b: str, settings: DiffSettings | None = None) -> DiffResult:
    """Rank the run's features by how differently they fire in group A and group B."""
    settings = settings or DiffSettings()
    reader = RunReader(run_dir)
    run = open_finished_run(reader)
    a, b = resolve_group(spec_a, run.store, settings.seed), resolve_group(spec_b, run.store, settings.seed)
    if a.name == b.name:
        b.name = f"{b.name} (B)"
    check_groups(a, b, settings.min_texts)
    scans = (
        scan_group(run.sae, a, settings.examples, settings.batch_size),
        scan_group(run.sae, b, settings.examples, settings.batch_size),
    )
    info = feature_info(reader, run.sae.cfg.d_sae)
    table = diff_table(
        scans[0].fire_counts, scans[0].n, scans[1].fire_counts, scans[1].n, a.name, b.name, settings, info
    )
    _add_examples(table, (a, b), scans)
    return DiffResult(
        Path(run_dir).expanduser(), a.name, b.name, scans[0].n, scans[1].n, table, settings, run.store.model_name
    )


def domain_matrix(run_dir: str | Path, settings: DiffSettings | None = None) -> MatrixResult:
    """For every pair of the run's store domains, how many features separate them (the same test
    as diff_groups). One pass over the store; every domain must hold min_texts texts."""
    settings = settings or DiffSettings()
    run = open_finished_run(RunReader(run_dir))
    domains = sorted(run.store.metadata()["domain"].astype(str).unique())
    if len(domains) < 2:
        raise UserError(
            f"{run_dir} was trained on one domain ({domains[0]}); sae-diff -m needs a joint run "
            "over several domains (e.g. sae-train domain=wiki_all)"
        )
    groups = [store_group(run.store, [d]) for d in domains]
    for g in groups:
        check_size(g, settings.min_texts)
    scans = [scan_group(run.sae, g, 1, settings.batch_size) for g in groups]
    return matrix_from_counts(
        Path(run_dir).expanduser(), domains, [s.fire_counts for s in scans], [s.n for s in scans], settings
    )


def matrix_from_counts(
    run_dir: Path, domains: list[str], counts: list[np.ndarray], sizes: list[int], settings: DiffSettings
) -> MatrixResult:
    """The matrix from each domain's per-feature firing counts and text count (however they were
    counted: a pass of the SAE here, activations kept in memory in sae-serve)."""
    D = len(domains)
    sep_m, more_m, rows = np.zeros((D, D), np.int64), np.zeros((D, D), np.int64), []
    for i, j in itertools.combinations(range(D), 2):
        t = diff_table(counts[i], sizes[i], counts[j], sizes[j], domains[i], domains[j], settings)
        n_sep, n_i = int(t["separating"].sum()), int((t["more_in"] == domains[i]).sum())
        sep_m[i, j] = sep_m[j, i] = n_sep
        more_m[i, j], more_m[j, i] = n_i, n_sep - n_i
        rows.append(
            {
                "a": domains[i],
                "b": domains[j],
                "n_a": sizes[i],
                "n_b": sizes[j],
                "separating": n_sep,
                "more_in_a": n_i,
                "more_in_b": n_sep - n_i,
            }
        )
    return MatrixResult(run_dir, domains, list(sizes), sep_m, more_m, settings, pd.DataFrame(rows))
