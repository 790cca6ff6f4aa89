"""compare.html from templates/compare.html.j2: one self-contained page for `sae-compare` (inline
CSS and SVG, no script needed).

This module turns a ComparisonResult into plain data per section (tables as rows of values, plots
as geometry from pages/plots.py); the template writes the markup, autoescaped. Section ids: runs,
overlap, best-match, classes, shared, specific, joint (each only when it has something to show).
"""

from __future__ import annotations

import numpy as np

from ..pages import plots, render
from ..pages.colors import DomainColors
from ..pages.fmt import num, pct
from .analysis import ComparisonResult

MAX_GROUPS, MAX_SPECIFIC = 300, 40

TITLES = {
    "runs": "Runs",
    "overlap": "Domain × domain feature overlap",
    "best-match": "Best-match cosine",
    "classes": "Shared and domain-specific features",
    "shared": "Shared features, labels side by side",
    "specific": "Domain-specific features",
    "joint": "Joint SAEs: features per domain",
}


def _feat(fid, label: str) -> dict:
    return {"id": int(fid), "label": label}


def runs_section(res: ComparisonResult, colors: DomainColors) -> dict:
    rows = [
        {
            "name": r.name,
            "cls": colors.cls(r.name),
            "path": str(r.path),
            "domains": ", ".join(r.store_domains) if len(r.store_domains) <= 4 else f"{len(r.store_domains)} domains",
            "values": [
                r.architecture,
                r.d_sae,
                r.k,
                int(r.live.sum()),
                sum(1 for s in r.labels if s),
                r.metrics.get("fve"),
            ],
        }
        for r in res.runs
    ]
    first = res.runs[0]
    return {
        "rows": rows,
        "model": first.model_name,
        "d_in": first.d_in,
        "threshold": num(res.threshold),
        "warnings": res.warnings,
    }


def overlap_section(res: ComparisonResult) -> dict:
    n = len(res.runs)
    counts = [[int(round(res.overlap[i, j] * r.live.sum())) for j in range(n)] for i, r in enumerate(res.runs)]
    text = np.array([[pct(res.overlap[i, j]) if i != j else "–" for j in range(n)] for i in range(n)], dtype=object)
    vals = res.overlap.copy()
    np.fill_diagonal(vals, np.nan)
    return {
        "heatmap": plots.heatmap(res.names, res.names, vals, text=text, vmax=1.0, caption="feature overlap"),
        "names": res.names,
        "counts": [[name, *row] for name, row in zip(res.names, counts)],
    }


def best_match_section(res: ComparisonResult, colors: DomainColors) -> dict:
    f = res.features[~res.features["dead"]]
    series = [(n, f.loc[f["run"] == n, "best_match_cos"].to_numpy(float), colors.cls(n)) for n in res.names]
    lo = -0.2 if any((s[1] < 0).any() for s in series) else 0.0
    return {
        "legend": colors.legend() if len(series) > 1 else [],
        "plot": plots.histogram(
            series, bins=40, lo=lo, hi=1.0, xlabel="best-match decoder cosine", vlines=[(res.threshold, "threshold")]
        ),
    }


def classes_section(res: ComparisonResult) -> dict:
    counts = res.class_counts()
    return {
        "head": ["run", *counts.columns],
        "need": max(1, int(np.ceil(res.settings["shared_fraction"] * (len(res.runs) - 1) - 1e-9))),
        "others": len(res.runs) - 1,
        "rows": [[n, *(int(counts.loc[n, c]) for c in counts.columns)] for n in res.names],
    }


def shared_section(res: ComparisonResult) -> dict:
    f = res.features[res.features["group"] >= 0]
    if not len(f):
        return {"na": f"no feature is present in another run (decoder cosine ≥ {num(res.threshold)})"}
    rows = []
    for gid, members in list(f.groupby("group", sort=True))[:MAX_GROUPS]:
        per_run = [
            [_feat(i, lab) for i, lab in zip(m["feature_id"], m["label"])]
            for m in (members[members["run"] == n] for n in res.names)
        ]
        rows.append(
            {
                "values": [int(gid), int(members["run"].nunique()), float(members["best_match_cos"].min())],
                "runs": per_run,
            }
        )
    return {
        "head": ["group", "runs", "min best cos", *res.names],
        "rows": rows,
        "more": len(f["group"].unique()) - MAX_GROUPS,
    }


def specific_section(res: ComparisonResult) -> dict:
    out = []
    for n in res.names:
        f = res.features[(res.features["run"] == n) & (res.features["class"] == "specific")]
        f = f.sort_values("density", ascending=False, na_position="last", kind="stable")
        rows = [
            {"feature": _feat(i, lab), "density": pct(d), "cos": c}
            for i, lab, d, c in zip(f["feature_id"], f["label"], f["density"], f["best_match_cos"])
        ][:MAX_SPECIFIC]
        out.append({"run": n, "n": len(f), "rows": rows})
    return {"runs": out, "open": len(res.runs) <= 3}


def joint_section(res: ComparisonResult, colors: DomainColors) -> dict:
    out = []
    for j in res.joint:
        c = j.counts.sort_values("n_main", ascending=False, kind="stable")
        diag = np.diag(j.overlap).astype(float)
        frac = np.divide(j.overlap, diag[:, None], out=np.full(j.overlap.shape, np.nan), where=diag[:, None] > 0)
        text = np.array([[str(int(v)) for v in row] for row in j.overlap], dtype=object)
        out.append(
            {
                "run": j.run,
                "bars": plots.hbar(list(c["domain"]), list(c["n_main"]), [colors.cls(d) for d in c["domain"]]),
                "rows": [
                    [d, int(a), int(b), int(e)]
                    for d, a, b, e in zip(c["domain"], c["n_main"], c["n_active"], c["n_specific"])
                ],
                "heatmap": plots.heatmap(j.domains, j.domains, frac, text=text, vmax=1.0, caption="domain overlap"),
            }
        )
    return {
        "runs": out,
        "min_share": num(res.settings["min_share"]),
        "specific_share": num(res.settings["specific_share"]),
    }


def render_compare_page(res: ComparisonResult) -> str:
    colors = DomainColors(res.names + [d for j in res.joint for d in j.domains])
    body = {"runs": runs_section(res, colors)}
    if len(res.runs) > 1:
        body.update(
            {
                "overlap": overlap_section(res),
                "best_match": best_match_section(res, colors),
                "classes": classes_section(res),
                "shared": shared_section(res),
                "specific": specific_section(res),
            }
        )
    if res.joint:
        body["joint"] = joint_section(res, colors)
    elif any(r.joint for r in res.runs):
        body["joint"] = {
            "na": "the joint run has no features.parquet with domain shares; label it with sae-label first"
        }
    ids = [k.replace("_", "-") for k in body]
    title = "SAE comparison: " + ", ".join(res.names[:6]) + (" …" if len(res.names) > 6 else "")
    return render(
        "sae_lightning.compare",
        "compare.html.j2",
        title=title,
        sections=[(k, TITLES[k]) for k in ids],
        colors=colors,
        **body,
    )
