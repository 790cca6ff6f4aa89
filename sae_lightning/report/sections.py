"""One function per page section; each returns the inner HTML of its <section>.

Sections degrade independently: a missing optional input turns into a "not available" note
naming what is missing, never into an exception, so a partial run still gets a useful page.
The feature map and the feature list are drawn by the page's script from the embedded data;
their sections here hold only controls, legends and notes.
"""
from __future__ import annotations

import json
import math

import numpy as np

from . import svg
from .colors import DomainColors
from .fmt import esc, num
from .load import RunData
from .quality import NOT_MEASURED, SOURCES, headline, label_quality
from .verdicts import MEANING, RELABEL_HINT, has_verdicts, verdict_counts, verdicts

DENSE = 0.1  # a feature is dense when it fires on more than 10 % of inputs
VERDICT_CLASSES = {"interpretable": "v0", "mixed": "v1", "weak": "v2", "dead": "v3", "unrated": "v4"}

# Known metrics in reading order, with what they mean.
METRIC_INFO = {
    "fve": "fraction of variance explained, 1 − Σ‖x − x̂‖² / Σ‖x − x̄‖² (validation)",
    "nmse": "Σ‖x − x̂‖² / Σ‖x‖²",
    "cos_sim": "mean cosine(x, x̂)",
    "l0": "mean active latents per input",
    "dead_frac": "share of features that never fire",
    "dense_frac": "share of features firing on > 10 % of inputs",
    "retrieval_recall@10": "nearest neighbours found with x̂ vs with x",
    "n_interpretable": "features whose top texts share a theme",
    "n_mixed": "features whose top texts are unrelated",
    "n_weak": "features too rare or too little shared to judge",
    "n_dead": "dead features",
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


def na(what: str) -> str:
    return f'<p class="na">not available: {esc(what)}</p>'


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


def _kv_table(pairs) -> str:
    return '<table class="kv">' + "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in pairs) + "</table>"


def _tile(title: str, value: str, sub: str = "", cls: str = "") -> str:
    return (f'<div class="tile {cls}"><div class="tv">{value}</div><div class="tt">{esc(title)}</div>'
            f'{f"<div class=ts>{sub}</div>" if sub else ""}</div>')


def verdict_tiles(run: RunData) -> str:
    counts = verdict_counts(run)
    tiles = "".join(_tile(v, f"{c:,}", esc(MEANING[v]), f"vt {VERDICT_CLASSES[v]}") for v, c in counts.items())
    out = f'<div class="tiles">{tiles}</div>'
    if not has_verdicts(run):
        out += f'<p class="na">This run has no verdicts: {esc(RELABEL_HINT)}.</p>'
    return out


def quality_line(run: RunData) -> str:
    """One sentence: the labels' mean hard-negative AUROC beside both baselines'."""
    who, cells = headline(run)
    if cells["label"].value is None:
        return f'<p class="na">Label quality with hard negatives: {NOT_MEASURED}.</p>'
    parts = [f"{esc(name)} <b>{esc(num(cells[src].value, 3))}</b>" for src, name in SOURCES
             if cells[src].value is not None]
    return (f'<p class="lead">Label quality (mean AUROC against hard negatives, scored by {esc(who)}): '
            + " · ".join(parts) + ". 0.5 is chance.</p>")


def overview(run: RunData, colors: DomainColors) -> str:
    cfg, m = run.cfg, run.metrics
    labels = run.cols.get("label")
    n_lab = sum(1 for v in labels if v) if labels is not None else None
    n_dead = int(run.dead.sum())
    pairs = [
        ("run", esc(run.run_dir.resolve().name)),
        ("architecture", esc(cfg.get("architecture", "not available"))),
        ("d_in · d_sae · k", esc(" · ".join(num(cfg[k]) if cfg.get(k) is not None else "n/a"
                                           for k in ("d_in", "d_sae", "k")))),
        ("embedding model", esc(model_name(cfg) or "not available")),
        ("domains", (", ".join(f'<i class="sw {colors.cls(d)}"></i>{esc(d)}' for d in domains_of(run)))
         or "not available"),
        ("features", f"{run.n:,} rows in features.parquet: {run.n - n_dead:,} live, {n_dead:,} dead"
                     + (f", {n_lab:,} labelled" if n_lab is not None else "")),
    ]
    tiles = [_tile(title, esc(num(m[key], 3))) for key, title in
             (("fve", "FVE"), ("l0", "L0"), ("cos_sim", "cos(x, x̂)"), ("retrieval_recall@10", "recall@10"))
             if key in m]
    out = [verdict_tiles(run), quality_line(run), f'<div class="tiles small">{"".join(tiles)}</div>' if tiles else "",
           _kv_table(pairs)]
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
    out = []
    for b_i, block in enumerate(label_quality(run)):
        head = ("<tr><th>labels</th>" + "".join(f"<th>{esc(t)}</th>" for t in block.columns)
                + "<th>features scored</th></tr>")
        body = []
        for r in block.rows:
            cells = "".join(f'<td class="nm">{NOT_MEASURED}</td>' if not c.source else
                            f'<td class="n">{esc(num(c.value, 3))}{"<sup>†</sup>" if c.source == "features" else ""}</td>'
                            for c in r.cells)
            ns = f"{r.n_scored:,}" if r.n_scored is not None else "n/a"
            body.append(f"<tr><th>{esc(r.name)}</th>{cells}<td class=\"n\">{ns}</td></tr>")
        tid = "label-quality-table" if b_i == 0 else "label-quality-judge"
        out.append(f"<h3>Means, {esc(block.title)}</h3>"
                   f'<table class="lq" id="{tid}"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>')
    out.append('<p class="note">Scored on held-out texts, never those that produced a label. Positives span '
               "the feature's activation range; random negatives are non-activating texts, hard negatives the "
               "non-activating texts closest to the positives. AUROC 0.5 = chance. Precision and recall: of "
               "texts holding a label keyword, of activating texts. † mean computed from features.parquet "
               "(key absent from metrics.json).</p>")
    series = [(name, v, cls) for (src, name), cls in zip(SOURCES, ("s0", "s2", "s1"))
              for v in [run.floats(f"{src}_auroc_hard")] if v is not None and np.isfinite(v).any()]
    if series:
        out.append("<h3>Per-feature AUROC against hard negatives</h3>" + svg.histogram(
            series, bins=25, lo=0.0, hi=1.0, xlabel="AUROC, hard negatives", vlines=[(0.5, "chance")])
            + '<div class="legend">' + "".join(f'<span><i class="sw {cls}"></i>{esc(name)}</span>'
                                               for name, _, cls in series) + "</div>")
    coh = run.floats("coherence")
    if coh is not None and np.isfinite(coh).any():
        v = verdicts(run)
        by_verdict = [(name, coh[v == name], cls) for name, cls in (("interpretable", "s0"), ("mixed", "s2"),
                                                                    ("weak", "s1")) if (v == name).any()]
        lo, hi = float(np.nanmin(coh)), float(np.nanmax(coh))
        out.append("<h3>Coherence of live features, by verdict</h3>" + svg.histogram(
            by_verdict or [("live features", coh[~run.dead], "s0")], bins=30, lo=lo, hi=hi if hi > lo else lo + 1,
            height=180, xlabel="coherence (how much a feature's top texts share, against random sets)")
            + '<div class="legend">' + "".join(f'<span><i class="sw {cls}"></i>{esc(name)}</span>'
                                               for name, _, cls in by_verdict) + "</div>")
    elif not has_verdicts(run):
        out.append(f'<p class="na">No coherence or hard-negative scores: {esc(RELABEL_HINT)}.</p>')
    return "".join(out)


def feature_map(run: RunData, colors: DomainColors) -> str:
    if run.W_dec is None or run.W_dec.ndim != 2:
        return na("decoder weights (sae/sae_weights.safetensors, key W_dec)")
    verdict_legend = '<div class="legend" id="map-legend-verdict" hidden>' + "".join(
        f'<span><i class="sw {c}"></i>{esc(v)}</span>' for v, c in VERDICT_CLASSES.items()) + "</div>"
    return ('<div class="controls-inline">colour by <select id="map-colour"><option value="domain">main domain'
            '</option><option value="verdict">verdict</option></select></div>'
            '<canvas id="map" width="900" height="640"></canvas><p class="note" id="map-hover">&nbsp;</p>'
            f'<div id="map-legend-domain">{colors.legend([("dead", "cdead"), ("unknown domain", "cx")])}</div>'
            f"{verdict_legend}"
            '<p class="note">Spectral embedding of the 15-nearest-neighbour cosine graph of the live decoder '
            "directions (rows of W_dec): nearby points are features with similar directions, clusters are "
            "groups of related features (PCA of the same rows explains ~1 % per axis and shows one blob). Dead "
            "features sit in the lower-left corner. Hover a point for its label, click it to open its card.</p>")


def families(run: RunData) -> str:
    fam = run.families or {}
    n = len(next(iter(fam.values()))) if fam else 0
    if not n:
        return na("families.parquet is empty")
    label = run.cols.get("label")
    lab_of = {int(f): (label[i] if label is not None else "") or "" for i, f in enumerate(run.feature_id)}
    fids = set(lab_of)

    def ref(f) -> str:
        if f is None:
            return "?"
        f = int(f)
        txt = f"#{f} {esc(lab_of.get(f, ''))}".strip()
        return f'<a href="#f{f}">{txt}</a>' if f in fids else txt  # the script opens #f<id> as a card

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


def features_controls(run: RunData) -> str:
    """Search, verdict filter, sort and pager of the feature list; the script fills #cards."""
    counts = verdict_counts(run)
    opts = "".join(f'<option value="{v}">{v} ({c:,})</option>' for v, c in counts.items())
    return ('<div class="controls"><input id="q" type="search" placeholder="search labels, keywords, texts, #id" '
            'aria-label="search features"> <select id="verdict" aria-label="verdict">'
            f'<option value="live">all live ({run.n - int(run.dead.sum()):,})</option><option value="all">all '
            f"({run.n:,})</option>{opts}</select> "
            '<select id="sort" aria-label="sort by"><option value="confidence">confidence (verdict, then label score)'
            '</option><option value="label_score">label score</option><option value="coherence">coherence</option>'
            '<option value="density">density</option><option value="label_auroc_hard">AUROC, hard negatives</option>'
            '<option value="id">feature id</option></select> '
            'min score <input id="minscore" type="number" step="0.05" min="0" max="1" value="" aria-label="minimum label score">'
            ' <span id="nshown"></span></div><div id="cards"></div><div class="pager" id="pager"></div>'
            f'<noscript><p class="na">The feature list needs JavaScript; features.parquet holds the same data.</p></noscript>')
