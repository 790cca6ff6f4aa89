"""One function per page section; each returns the inner HTML of its <section>.

Sections degrade independently: a missing optional input turns into a "not available" note
naming what is missing, never into an exception, so a partial run still gets a useful page.
"""
from __future__ import annotations

import json
import math

import numpy as np

from . import svg
from .colors import DomainColors
from .featuremap import choose_points, pca_2d
from .fmt import esc, num, pct
from .load import RunData
from .quality import COLUMN_TITLES, NOT_MEASURED, auroc_series, label_quality

MAP_POINTS = 6144
DENSE = 0.1  # docs/concepts.md: a feature is dense when it fires on more than 10 % of inputs

# Known metrics in reading order, with what they mean (docs/concepts.md "Reconstruction metrics").
METRIC_INFO = {
    "fve": "fraction of variance explained, 1 − Σ‖x − x̂‖² / Σ‖x − x̄‖² (validation)",
    "nmse": "Σ‖x − x̂‖² / Σ‖x‖²",
    "cos_sim": "mean cosine(x, x̂)",
    "l0": "mean active latents per input",
    "dead_frac": "share of features that never fire",
    "dense_frac": "share of features firing on > 10 % of inputs",
    "retrieval_recall@10": "nearest neighbours found with x̂ vs with x",
    "label_auroc_mean": "KeyBERT label: AUROC of cos(label, text), top texts vs zeros",
    "label_auroc_median": "",
    "random_label_auroc_mean": "baseline: a random other feature's label",
    "random_label_auroc_median": "",
    "tfidf_auroc_mean": "baseline: TF-IDF top terms",
    "tfidf_auroc_median": "",
    "keyword_hit_lift_mean": "share of positives holding a label keyword / share among negatives",
    "keyword_hit_lift_median": "",
    "random_keyword_hit_lift_mean": "",
    "random_keyword_hit_lift_median": "",
    "tfidf_keyword_hit_lift_mean": "",
    "tfidf_keyword_hit_lift_median": "",
    "n_features": "features in the SAE",
    "n_labelled": "features with a label",
    "n_dead": "dead features",
}


def na(what: str) -> str:
    return f'<p class="na">not available: {esc(what)}</p>'


def domains_of(run: RunData) -> list[str]:
    seen = set()
    for col in ("main_domain",):
        if col in run.cols:
            seen.update(d for d in run.cols[col] if d)
    for s in run.domain_shares:
        seen.update(s)
    return sorted(seen)


def model_name(cfg: dict) -> str | None:
    meta = cfg.get("metadata") or {}
    return meta.get("model_name") or cfg.get("model_name") or meta.get("hook_name")


def _kv_table(pairs) -> str:
    return '<table class="kv">' + "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in pairs) + "</table>"


def _tile(title: str, value: str, sub: str = "") -> str:
    return f'<div class="tile"><div class="tv">{value}</div><div class="tt">{esc(title)}</div>{sub}</div>'


def overview(run: RunData, colors: DomainColors) -> str:
    cfg, m = run.cfg, run.metrics
    labels = run.cols.get("label")
    n_lab = sum(1 for v in labels if v) if labels is not None else None
    n_dead = int(run.dead.sum())
    doms = domains_of(run)
    pairs = [
        ("run", esc(run.run_dir.resolve().name)),
        ("architecture", esc(cfg.get("architecture", "not available"))),
        ("d_in", esc(num(cfg["d_in"]) if "d_in" in cfg else "not available")),
        ("d_sae", esc(num(cfg["d_sae"]) if "d_sae" in cfg else "not available")),
        ("k", esc(num(cfg["k"]) if cfg.get("k") is not None else "not available")),
        ("embedding model", esc(model_name(cfg) or "not available")),
        ("domains", (", ".join(f'<i class="sw {colors.cls(d)}"></i>{esc(d)}' for d in doms)) or "not available"),
        ("features", f"{run.n:,} rows in features.parquet: {run.n - n_dead:,} live, {n_dead:,} dead"
                     + (f", {n_lab:,} labelled" if n_lab is not None else "")),
    ]
    tiles = []
    for key, title in (("fve", "FVE"), ("l0", "L0"), ("cos_sim", "cos(x, x̂)"), ("retrieval_recall@10", "recall@10")):
        if key in m:
            tiles.append(_tile(title, esc(num(m[key], 3))))
    if "dead_frac" in m:
        tiles.append(_tile("dead", esc(pct(m["dead_frac"]))))
    if "label_auroc_mean" in m:
        base = f'<div class="ts">random {esc(num(m["random_label_auroc_mean"], 3))}</div>' if "random_label_auroc_mean" in m else ""
        tiles.append(_tile("label AUROC", esc(num(m["label_auroc_mean"], 3)), base))
    out = [f'<div class="tiles">{"".join(tiles)}</div>' if tiles else "", _kv_table(pairs)]

    main = run.cols.get("main_domain")
    if main is not None:
        counts: dict[str, int] = {}
        for d, dead in zip(main, run.dead):
            if not dead and d:
                counts[d] = counts.get(d, 0) + 1
        if counts:
            items = sorted(counts.items(), key=lambda kv: -kv[1])
            out.append("<h3>Live features by main domain</h3>" + svg.hbar(
                [d for d, _ in items], [c for _, c in items], [colors.cls(d) for d, _ in items]))
    spec = run.floats("domain_specificity")
    if spec is not None and np.isfinite(spec[~run.dead]).any():
        out.append("<h3>Domain specificity of live features</h3>" + svg.histogram(
            [("features", spec[~run.dead], "s0")], bins=20, lo=0.0, hi=1.0, height=180,
            xlabel="domain specificity (0 = spread over domains, 1 = one domain)"))
    if run.cfg:
        out.append('<details><summary>sae/cfg.json</summary><pre>'
                   + esc(json.dumps(run.cfg, indent=2, default=str)) + "</pre></details>")
    if run.hydra_config is not None:
        out.append('<details><summary>Run config (.hydra/config.yaml)</summary><pre>'
                   + esc(run.hydra_config) + "</pre></details>")
    for note in run.notes:
        out.append(f'<p class="na">{esc(note)}</p>')
    return "".join(out)


def metrics(run: RunData) -> str:
    if not run.metrics:
        return na("metrics.json holds no metrics")
    keys = [k for k in METRIC_INFO if k in run.metrics] + sorted(k for k in run.metrics if k not in METRIC_INFO)
    rows = "".join(f"<tr><th>{esc(k)}</th><td class=\"n\">{esc(num(run.metrics[k]))}</td>"
                   f"<td class=\"d\">{esc(METRIC_INFO.get(k, ''))}</td></tr>" for k in keys)
    return f'<table class="metrics"><thead><tr><th>metric</th><th>value</th><th>meaning</th></tr></thead><tbody>{rows}</tbody></table>'


def density(run: RunData) -> str:
    known = np.isfinite(run.density)
    if not known.any():
        return na("no density column in features.parquet and no sae/sparsity.safetensors")
    live = ~run.dead & known
    ld = run.log10_density[live]
    zero_live = int((~np.isfinite(ld)).sum())  # live by flag but density 0 (e.g. fired only in training)
    ld = ld[np.isfinite(ld)]
    n_dead = int(run.dead.sum())
    n_dense = int((run.density[live] > DENSE).sum())
    lo = math.floor(float(ld.min())) if ld.size else -6.0
    hist = svg.histogram([("live features", ld, "s0")], bins=40, lo=lo, hi=0.0,
                         xlabel="log10 feature density (fraction of inputs a feature fires on)",
                         vlines=[(math.log10(DENSE), "dense (>10%)")])
    counts = svg.hbar(["live", "dense (> 10 %)", "dead"], [int(live.sum()) - zero_live, n_dense, n_dead],
                      ["s0", "s2", "cdead"], row=20)
    note = (f'<p class="note">{ld.size:,} live features in the histogram; {n_dead:,} dead features counted '
            f'separately (density 0, no place on a log axis)'
            + (f"; {zero_live:,} live-flagged features with density 0 left out" if zero_live else "")
            + (f"; density unknown for {int((~known).sum()):,}" if (~known).any() else "") + ".</p>")
    return hist + counts + note


def label_quality_section(run: RunData) -> str:
    rows = label_quality(run)
    any_features = any(c.source == "features" for r in rows for c in r.cells)
    head = "<tr><th>labels</th>" + "".join(f"<th>{esc(t)}</th>" for t in COLUMN_TITLES) + "<th>features scored</th></tr>"
    body = []
    for r in rows:
        cells = []
        for c in r.cells:
            if c.value is None and not c.source:
                cells.append(f'<td class="nm">{NOT_MEASURED}</td>')
            else:
                mark = "<sup>†</sup>" if c.source == "features" else ""
                cells.append(f'<td class="n">{esc(num(c.value, 4) if c.value is not None else "n/a")}{mark}</td>')
        ns = f"{r.n_scored:,}" if r.n_scored is not None else "n/a"
        body.append(f"<tr><th>{esc(r.name)}</th>{''.join(cells)}<td class=\"n\">{ns}</td></tr>")
    out = [f'<table class="lq" id="label-quality-table"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>',
           '<p class="note">Positives: a feature\'s top-activating held-out texts; negatives: held-out texts where it '
           'is zero. AUROC 0.5 = chance; lift 1 = no better than chance.'
           + (" † computed from features.parquet (key absent from metrics.json)." if any_features else "") + "</p>"]
    series = auroc_series(run)
    if series:
        out.append("<h3>Per-feature label AUROC</h3>" + svg.histogram(
            series, bins=25, lo=0.0, hi=1.0, xlabel="label AUROC", vlines=[(0.5, "chance")]))
        out.append('<div class="legend">' + "".join(
            f'<span><i class="sw {cls}"></i>{esc(name)}</span>' for name, _, cls in series) + "</div>")
    else:
        out.append(na("per-feature AUROC columns (label_auroc, random_label_auroc, tfidf_auroc) in features.parquet"))
    return "".join(out)


def feature_map(run: RunData, colors: DomainColors, carded: set[int]) -> str:
    W = run.W_dec
    if W is None or W.ndim != 2:
        return na("decoder weights (sae/sae_weights.safetensors, key W_dec)")
    ok = (run.feature_id >= 0) & (run.feature_id < W.shape[0])
    rows = np.flatnonzero(ok)
    if rows.size < 3:
        return na("fewer than 3 features of features.parquet match rows of W_dec")
    live = ~run.dead[rows]
    pick = choose_points(rows.size, live, MAP_POINTS)
    rows, live = rows[pick], live[pick]
    xy, ratio = pca_2d(W[run.feature_id[rows]], live)
    order = np.concatenate([np.flatnonzero(~live), np.flatnonzero(live)])  # dead underneath
    label, main = run.cols.get("label"), run.cols.get("main_domain")
    classes, titles, hrefs = [], [], []
    for j in order:
        i = int(rows[j])
        fid = int(run.feature_id[i])
        lab = (label[i] if label is not None else "") or ""
        dom = main[i] if main is not None else None
        if run.dead[i]:
            classes.append("cdead")
            titles.append(f"#{fid} dead")
        else:
            classes.append(colors.cls(dom))
            titles.append(f"#{fid} {lab or '(no label)'}" + (f" · {dom}" if dom else ""))
        hrefs.append(f"#f{fid}" if fid in carded else None)
    plot = svg.scatter(xy[order, 0], xy[order, 1], classes, titles, hrefs,
                       xlabel=f"PC1 ({100 * ratio[0]:.1f}% of variance)", ylabel=f"PC2 ({100 * ratio[1]:.1f}%)")
    extra = [("dead", "cdead")] if (~live).any() else []
    if main is None or any(not main[int(i)] for i in rows[live]):
        extra.append(("unknown domain", "cx"))
    note = (f'<p class="note">PCA of {rows.size:,} decoder directions (rows of W_dec), axes fitted on live '
            'features; colour = main domain. Hover a point for its label, click it to jump to its card.'
            + (f" Sampled {MAP_POINTS:,} of {int(ok.sum()):,} features." if ok.sum() > MAP_POINTS else "") + "</p>")
    return plot + colors.legend(extra) + note


def families(run: RunData, carded: set[int]) -> str:
    fam = run.families or {}
    n = len(next(iter(fam.values()))) if fam else 0
    if not n:
        return na("families.parquet is empty")
    label = run.cols.get("label")
    lab_of = {int(f): (label[i] if label is not None else "") or "" for i, f in enumerate(run.feature_id)}

    def ref(f) -> str:
        if f is None:
            return "?"
        f = int(f)
        txt = f"#{f} {esc(lab_of.get(f, ''))}".strip()
        return f'<a href="#f{f}">{txt}</a>' if f in carded else txt

    cap, max_children = 1000, 30
    fid, par, ch, fl = (fam.get(c) for c in ("family_id", "parent", "children", "label"))
    body = []
    for r in range(min(n, cap)):
        kids = (ch[r] if ch is not None else None) or []
        kid_html = ", ".join(ref(c) for c in kids[:max_children]) + (f", +{len(kids) - max_children} more" if len(kids) > max_children else "")
        body.append(f"<tr><td class=\"n\">{esc(fid[r] if fid is not None else r)}</td>"
                    f"<td>{esc(fl[r] if fl is not None and fl[r] else '')}</td>"
                    f"<td>{ref(par[r]) if par is not None else 'n/a'}</td><td class=\"kids\">{kid_html}</td></tr>")
    more = f'<p class="note">{n - cap:,} more families in families.parquet.</p>' if n > cap else ""
    return (f'<p class="note">{n:,} feature families: a parent feature and the children that fire with it.</p>'
            '<table class="fam"><thead><tr><th>family</th><th>label</th><th>parent</th><th>children</th></tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>{more}')
