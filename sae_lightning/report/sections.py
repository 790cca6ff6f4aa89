"""One function per page section; each returns the plain data its part of report.html.j2 draws.

Sections degrade independently: a missing optional input becomes a "not available" note naming
what is missing (`{"na": ...}`), never an exception, so a partial run still gets a useful page.
The feature map and the feature list are drawn by the page's script from the embedded data;
their sections here hold only what the controls, legends and notes need.
"""

from __future__ import annotations

import json
import math

import numpy as np

from ..pages import plots
from ..pages.colors import DomainColors
from ..pages.fmt import num
from ..run_schema import DEAD, DENSE_THRESHOLD, HEADLINE, HEADLINE_MEANING, INTERPRETABLE, MIXED, TOKEN, WEAK
from .load import RunData
from .quality import SOURCES, headline, label_quality, table_keys
from .verdicts import MEANING, NAMES, read_verdicts, verdict_counts

VERDICT_CLASSES = {v: f"v{i}" for i, v in enumerate(NAMES)}  # page.css colours v0..v5
SERIES = ("s0", "s2", "s1", "s3")  # colour classes of the label sources / verdicts in overlaid plots
FAMILY_ROWS, MAX_CHILDREN = 1000, 30

# Known metrics in reading order, with what they mean.
METRIC_INFO = {
    "fve": "fraction of variance explained, 1 − Σ‖x − x̂‖² / Σ‖x − x̄‖² (validation)",
    "nmse": "Σ‖x − x̂‖² / Σ‖x‖²",
    "cos_sim": "mean cosine(x, x̂)",
    "l0": "mean active latents per input",
    "dead_frac": "share of features that never fire",
    "dense_frac": f"share of features firing on > {DENSE_THRESHOLD * 100:g} % of inputs",
    "retrieval_recall@10": "nearest neighbours found with x̂ vs with x",
    f"n_{INTERPRETABLE}": "features whose top texts share a theme",
    f"n_{MIXED}": "features whose top texts are unrelated",
    f"n_{TOKEN}": "features whose top texts share a word-piece, numbers or one word, not a meaning",
    f"n_{WEAK}": "features too rare or too little shared to judge",
    f"n_{DEAD}": "dead features",
    "coherence_mean": "how much a feature's top texts share, against random sets of texts",
    "label_score_mean": "per-feature label confidence",
    "label_auroc_mean": "KeyBERT label: AUROC of cos(label, text), positives vs random non-activating texts",
    "label_auroc_hard_mean": "the same against hard negatives (non-activating texts close to the positives)",
    "label_precision_mean": "share of texts holding a label keyword that activate the feature",
    "label_recall_mean": "share of activating texts that hold a label keyword",
    "judge_model": "the independent model that grades the labels",
    "n_features": "features in the SAE",
    "n_labelled": "features with a label",
}


def domains_of(run: RunData) -> list[str]:
    seen = set()
    for col in ("main_domain", "top_domains"):
        for v in run.cols.get(col) or []:
            seen.update([v] if isinstance(v, str) else (v or []))
    for s in run.domain_shares:
        seen.update(s)
    return sorted(d for d in seen if d)


def model_name(cfg: dict) -> str | None:
    meta = cfg.get("metadata") or {}
    return meta.get("model_name") or cfg.get("model_name") or meta.get("hook_name")


def metric_keys(metrics: dict) -> list[str]:
    """Known metrics in reading order, then the others alphabetically (the page and summary.md),
    less what was not measured (a judge's scores on a run without one: None, "") and the means the
    label-quality table shows."""
    in_table = table_keys()
    shown = {k for k, v in metrics.items() if v is not None and v != "" and k not in in_table}
    return [k for k in METRIC_INFO if k in shown] + sorted(k for k in shown if k not in METRIC_INFO)


def verdict_tiles(run: RunData) -> dict:
    return {
        "tiles": [
            {"verdict": v, "count": c, "meaning": MEANING[v], "cls": VERDICT_CLASSES[v]}
            for v, c in verdict_counts(run).items()
        ],
    }


def quality_line(run: RunData) -> dict:
    """The labels' mean hard-negative AUROC beside both baselines' (parts empty: not measured)."""
    who, cells = headline(run)
    parts = [(name, cells[src].value) for src, name in SOURCES if cells[src].value is not None]
    return {
        "who": who,
        "parts": parts if cells["label"].value is not None else [],
        "name": HEADLINE,
        "meaning": HEADLINE_MEANING,
    }


def overview(run: RunData, colors: DomainColors) -> dict:
    cfg, m = run.cfg, run.metrics
    labels = run.cols.get("label")
    n_lab = sum(1 for v in labels if v) if labels is not None else None
    n_dead = int(run.dead.sum())
    main_bars = None
    main = run.cols.get("main_domain")
    if main is not None:
        counts: dict[str, int] = {}
        for d, dead in zip(main, run.dead):
            if not dead and d:
                counts[d] = counts.get(d, 0) + 1
        items = sorted(counts.items(), key=lambda kv: -kv[1])
        if items:
            main_bars = plots.hbar([d for d, _ in items], [c for _, c in items], [colors.cls(d) for d, _ in items])
    return {
        "verdicts": verdict_tiles(run),
        "quality": quality_line(run),
        "tiles": [
            (title, m[key])
            for key, title in (
                ("fve", "FVE"),
                ("l0", "L0"),
                ("cos_sim", "cos(x, x̂)"),
                ("retrieval_recall@10", "recall@10"),
            )
            if key in m
        ],
        "run": run.run_dir.resolve().name,
        "architecture": cfg.get("architecture", "not available"),
        "dims": " · ".join(num(cfg[k]) if cfg.get(k) is not None else "n/a" for k in ("d_in", "d_sae", "k")),
        "model": model_name(cfg) or "not available",
        "domains": [(d, colors.cls(d)) for d in domains_of(run)],
        "features": f"{run.n:,} rows in features.parquet: {run.n - n_dead:,} live, {n_dead:,} dead"
        + (f", {n_lab:,} labelled" if n_lab is not None else ""),
        "main_bars": main_bars,
        "cfg_json": json.dumps(run.cfg, indent=2, default=str) if run.cfg else None,
        "hydra_config": run.hydra_config,
        "notes": run.notes,
    }


def metrics(run: RunData) -> list[tuple[str, object, str]]:
    return [(k, run.metrics[k], METRIC_INFO.get(k, "")) for k in metric_keys(run.metrics)]


def density(run: RunData) -> dict:
    known = np.isfinite(run.density)
    if not known.any():
        return {"na": "no density column in features.parquet and no sae/sparsity.safetensors"}
    live = ~run.dead & known
    ld = run.log10_density[live]
    zero_live = int((~np.isfinite(ld)).sum())  # live by flag but density 0 (e.g. fired only in training)
    ld = ld[np.isfinite(ld)]
    n_dead = int(run.dead.sum())
    lo = math.floor(float(ld.min())) if ld.size else -6.0
    return {
        "hist": plots.histogram(
            [("live features", ld, "s0")],
            bins=40,
            lo=lo,
            hi=0.0,
            xlabel="log10 feature density (fraction of inputs a feature fires on)",
            vlines=[(math.log10(DENSE_THRESHOLD), f"dense (>{DENSE_THRESHOLD:.0%})")],
        ),
        "bars": plots.hbar(
            ["live", f"dense (> {DENSE_THRESHOLD * 100:g} %)", "dead"],
            [int(live.sum()) - zero_live, int((run.density[live] > DENSE_THRESHOLD).sum()), n_dead],
            ["s0", "s2", "cdead"],
            row=20,
        ),
        "n_hist": int(ld.size),
        "n_dead": n_dead,
        "zero_live": zero_live,
        "unknown": int((~known).sum()),
    }


def label_quality_section(run: RunData) -> dict:
    out = {
        "blocks": label_quality(run),
        "auroc": None,
        "coherence": None,
    }
    series = [
        (name, v, cls)
        for (src, name), cls in zip(SOURCES, SERIES)
        for v in [run.floats(f"{src}_auroc_hard")]
        if v is not None and np.isfinite(v).any()
    ]
    if series:
        out["auroc"] = {
            "plot": plots.histogram(
                series, bins=25, lo=0.0, hi=1.0, xlabel="AUROC, hard negatives", vlines=[(0.5, "chance")]
            ),
            "legend": [(name, cls) for name, _, cls in series],
        }
    coh = run.floats("coherence")
    if coh is not None and np.isfinite(coh).any():
        v = read_verdicts(run)
        by_verdict = [
            (name, coh[v == name], cls)
            for name, cls in zip((INTERPRETABLE, MIXED, TOKEN, WEAK), SERIES)
            if (v == name).any()
        ]
        lo, hi = float(np.nanmin(coh)), float(np.nanmax(coh))
        out["coherence"] = {
            "plot": plots.histogram(
                by_verdict or [("live features", coh[~run.dead], "s0")],
                bins=30,
                lo=lo,
                hi=hi if hi > lo else lo + 1,
                height=180,
                xlabel="coherence (how much a feature's top texts share, against random sets)",
            ),
            "legend": [(name, cls) for name, _, cls in by_verdict],
        }
    return out


def feature_map(run: RunData, colors: DomainColors) -> dict:
    if run.W_dec is None or run.W_dec.ndim != 2:
        return {"na": "decoder weights (sae/sae_weights.safetensors, key W_dec)"}
    return {
        "domain_legend": colors.legend([("dead", "cdead"), ("unknown domain", "cx")]),
        "verdict_legend": list(VERDICT_CLASSES.items()),
    }


def families(run: RunData) -> dict:
    fam = run.families or {}
    n = len(next(iter(fam.values()))) if fam else 0
    if not n:
        return {"na": "families.parquet is empty"}
    label = run.cols.get("label")
    lab_of = {int(f): (label[i] if label is not None else "") or "" for i, f in enumerate(run.feature_id)}

    def ref(f) -> dict | None:  # a link opens #f<id> as a card, when the feature is in the table
        return None if f is None else {"id": int(f), "label": lab_of.get(int(f), ""), "link": int(f) in lab_of}

    fid, par, ch, fl = (fam.get(c) for c in ("family_id", "parent", "children", "label"))
    rows = []
    for r in range(min(n, FAMILY_ROWS)):
        kids = list((ch[r] if ch is not None else None) or [])
        rows.append(
            {
                "id": fid[r] if fid is not None else r,
                "label": (fl[r] if fl is not None else "") or "",
                "parent": ref(par[r]) if par is not None else "n/a",
                "kids": [ref(c) for c in kids[:MAX_CHILDREN]],
                "more_kids": max(len(kids) - MAX_CHILDREN, 0),
            }
        )
    return {"n": n, "rows": rows, "more": max(n - FAMILY_ROWS, 0)}


def features_controls(run: RunData) -> dict:
    """Search, verdict filter, sort and pager of the feature list; the script fills #cards."""
    return {"counts": verdict_counts(run), "n": run.n, "n_live": run.n - int(run.dead.sum())}
