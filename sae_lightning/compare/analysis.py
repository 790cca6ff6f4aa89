"""Cross-domain comparison of SAEs: which features several domains share and which one domain has.

The analysis only: it computes a ComparisonResult and renders nothing (write.py puts it on disk,
page.py draws compare.html from it).

Per-domain SAEs (one run per domain) are compared by decoder direction (match.py): a
feature is universal / shared / partial / specific by how many other domains' SAEs hold it. A
joint SAE (one run over many domains, e.g. domain=wiki_all) is read through its features' domain
shares instead: how many features each domain has, and which domains' features overlap.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..conf_dir import command_defaults
from ..errors import UserError
from .load import RunSAE, load_runs
from .match import CLASSES, PairMatch, classify, feature_groups, match_pair

log = logging.getLogger(__name__)

_DEFAULTS = command_defaults("compare")  # each setting's default and meaning; its range: validate.py
DEFAULT_THRESHOLD = _DEFAULTS["threshold"]  # also sae-serve's matching of features across runs


@dataclass
class JointDomains:
    """Per-domain view of one joint SAE, from its features' domain shares (activation mass)."""

    run: str
    domains: list[str]
    counts: pd.DataFrame  # per domain: n_main, n_active, n_specific
    overlap: np.ndarray  # [D, D] live features active (share >= min_share) in both domains


@dataclass
class ComparisonResult:
    runs: list[RunSAE]
    threshold: float
    pairs: list[PairMatch]
    features: pd.DataFrame  # one row per (run, feature): class, partners, group, label
    matches: pd.DataFrame  # one row per assigned pair of live features, both labels side by side
    overlap: np.ndarray  # [R, R] share of run i's live features present in run j (best match >= threshold)
    joint: list[JointDomains] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # shown on the page and logged

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.runs]

    def class_counts(self) -> pd.DataFrame:
        """Features per class (columns) and run (rows)."""
        if not len(self.pairs):
            return pd.DataFrame(index=self.names)
        tab = pd.crosstab(self.features["run"], self.features["class"])
        return tab.reindex(index=self.names, columns=[c for c in CLASSES], fill_value=0)


def joint_domains(run: RunSAE, min_share: float, specific_share: float) -> JointDomains | None:
    """None when the run has no domain shares (it was not labelled: run `sae-label` first)."""
    if not run.shares:
        return None
    domains = sorted({d for s in run.shares for d in s} | set(run.store_domains))
    S = np.array([[s.get(d, 0.0) for d in domains] for s in run.shares]) * run.live[:, None]
    has = S.sum(1) > 0
    main = np.where(has, S.argmax(1), -1)
    top = S.max(1)
    active = S >= min_share
    counts = pd.DataFrame(
        {
            "run": run.name,
            "domain": domains,
            # the domain holding most of the feature's activation mass
            "n_main": [int(((main == j) & has).sum()) for j in range(len(domains))],
            # a share of at least min_share: the feature serves this domain, perhaps among others
            "n_active": active.sum(0).astype(int),
            # main domain with at least specific_share of the mass: this domain's own feature
            "n_specific": [int(((main == j) & (top >= specific_share)).sum()) for j in range(len(domains))],
        }
    )
    A = active.astype(np.int64)
    return JointDomains(run.name, domains, counts, A.T @ A)


def _features_table(
    runs: list[RunSAE], pairs: list[PairMatch], threshold: float, shared_fraction: float
) -> pd.DataFrame:
    R = len(runs)
    groups = feature_groups([r.d_sae for r in runs], pairs, threshold)
    frames, offset = [], 0
    for i, run in enumerate(runs):
        n_matched = np.zeros(run.d_sae, np.int64)
        best = np.full(run.d_sae, np.nan)
        partners: dict[str, np.ndarray] = {}
        nearest: dict[str, np.ndarray] = {}
        for p in pairs:
            if i not in (p.a, p.b):
                continue
            other = runs[p.b if p.a == i else p.a].name
            cos, near = p.side(i)
            present = cos >= threshold
            n_matched += present
            best = np.fmax(best, cos)
            nearest[other] = np.where(present, near, -1)
            partner, pcos = p.partner_cos(0 if p.a == i else 1, run.d_sae)
            partners[other] = np.where(pcos >= threshold, partner, -1)
        frame = pd.DataFrame(
            {
                "run": run.name,
                "feature_id": np.arange(run.d_sae),
                "label": run.labels,
                "density": run.density,
                "dead": ~run.live,
                "class": classify(n_matched, run.live, R - 1, shared_fraction) if R > 1 else "",
                "n_matched": n_matched,
                "n_other_runs": R - 1,
                "best_match_cos": best,
                "group": groups[offset : offset + run.d_sae],
                # per other run, as JSON objects so the table keeps fixed columns however many runs are
                # compared: the nearest feature there, and the one-to-one partner, where cos >= threshold
                "nearest": _per_run_json(nearest, run.d_sae),
                "partners": _per_run_json(partners, run.d_sae),
            }
        )
        frames.append(frame)
        offset += run.d_sae
    return pd.concat(frames, ignore_index=True)


def _per_run_json(ids: dict[str, np.ndarray], n: int) -> list[str]:
    return [json.dumps({k: int(v[f]) for k, v in ids.items() if v[f] >= 0}) for f in range(n)]


def _matches_table(
    runs: list[RunSAE], pairs: list[PairMatch], features: pd.DataFrame, threshold: float
) -> pd.DataFrame:
    cls = {(r, f): c for r, f, c in zip(features["run"], features["feature_id"], features["class"])}
    frames = []
    for p in pairs:
        A, B = runs[p.a], runs[p.b]
        frames.append(
            pd.DataFrame(
                {
                    "run_a": A.name,
                    "feature_a": p.rows,
                    "label_a": [A.labels[f] for f in p.rows],
                    "run_b": B.name,
                    "feature_b": p.cols,
                    "label_b": [B.labels[f] for f in p.cols],
                    "cos": p.cos,
                    "matched": p.cos >= threshold,
                    "best_cos_a": p.best_a[p.rows],
                    "best_cos_b": p.best_b[p.cols],
                    "class_a": [cls[(A.name, f)] for f in p.rows],
                    "class_b": [cls[(B.name, f)] for f in p.cols],
                }
            ).sort_values("cos", ascending=False, kind="stable")
        )
    cols = [
        "run_a",
        "feature_a",
        "label_a",
        "run_b",
        "feature_b",
        "label_b",
        "cos",
        "matched",
        "best_cos_a",
        "best_cos_b",
        "class_a",
        "class_b",
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def shared_init_warnings(runs: list[RunSAE], pairs: list[PairMatch], threshold: float) -> list[str]:
    """Runs trained with one seed start from the same decoder (the init draws the same random rows
    whatever the data), and after a short training their rows are still close to it: feature i of
    one run then "matches" feature i of the other whatever the two learned. By chance a matched
    pair has the same index with probability ~1/d_sae, so a large share of same-index pairs says
    the matches measure the shared init, not the domains."""
    out = []
    for p in pairs:
        ok = p.cos >= threshold
        same = float((p.rows[ok] == p.cols[ok]).mean()) if ok.any() else 0.0
        if ok.sum() >= 5 and same > max(0.2, 10 / runs[p.a].d_sae):
            out.append(
                f"{same:.0%} of the matched pairs of {runs[p.a].name} and {runs[p.b].name} are the same feature "
                "index: the runs share their initialisation (same seed) and their decoders are still close to "
                "it, so these matches reflect the init rather than the domains; train with different seeds "
                "or for longer"
            )
    return out


def compare_runs(
    run_dirs: Sequence[str | Path],
    threshold: float = DEFAULT_THRESHOLD,
    shared_fraction: float = _DEFAULTS["shared_fraction"],
    min_share: float = _DEFAULTS["min_share"],
    specific_share: float = _DEFAULTS["specific_share"],
) -> ComparisonResult:
    """Compare the SAEs of a sweep dir or of run dirs (UserError in one line for bad input).

    threshold        decoder cosine of an assigned pair that counts as the same feature
    shared_fraction  share of the other runs a feature must be in to be "shared" (not "partial")
    min_share, specific_share   joint SAEs: a feature serves a domain holding >= min_share of
                     its activation mass, and is that domain's own with >= specific_share
    """
    from ..validate import check_settings

    chosen = {"threshold": threshold, "shared_fraction": shared_fraction}
    chosen |= {"min_share": min_share, "specific_share": specific_share}
    check_settings("compare", chosen)
    if specific_share < min_share:  # else a domain's "own" features need not serve it: specific > active
        raise UserError(
            f"specific_share={specific_share} is below min_share={min_share}: a domain's own feature "
            "also serves it; raise --specific-share or lower --min-share"
        )
    runs, sweep = load_runs(run_dirs)
    if len(runs) < 2 and not runs[0].joint:
        raise UserError(
            f"only one run ({runs[0].path}) and it was trained on one domain; give the runs "
            "of several domains, or a joint run (domain=wiki_all)"
        )
    pairs = [
        match_pair(i, j, runs[i].W_dec, runs[j].W_dec, runs[i].live, runs[j].live)
        for i in range(len(runs))
        for j in range(i + 1, len(runs))
    ]
    features = _features_table(runs, pairs, threshold, shared_fraction)
    overlap = np.eye(len(runs))
    for p in pairs:
        overlap[p.a, p.b] = (p.best_a >= threshold).sum() / max(runs[p.a].live.sum(), 1)
        overlap[p.b, p.a] = (p.best_b >= threshold).sum() / max(runs[p.b].live.sum(), 1)
    joint = [j for j in (joint_domains(r, min_share, specific_share) for r in runs if r.joint) if j is not None]
    warnings = shared_init_warnings(runs, pairs, threshold)
    for w in warnings:
        log.warning("%s", w)
    return ComparisonResult(
        runs=runs,
        threshold=threshold,
        pairs=pairs,
        features=features,
        matches=_matches_table(runs, pairs, features, threshold),
        overlap=overlap,
        joint=joint,
        settings={**chosen, "sweep_dir": str(sweep) if sweep else None},
        warnings=warnings,
    )
