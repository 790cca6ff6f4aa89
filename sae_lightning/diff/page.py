"""diff.html and matrix.html: self-contained pages (inline CSS and SVG, no script, no network)
rendering what analysis.py computed."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..report.assets import CSS
from ..report.compare_page import EXTRA_CSS as HEATMAP_CSS, heatmap
from ..report.fmt import attr, esc, num
from ..report.svg import nice_ticks
from .analysis import DiffResult, MatrixResult

EXTRA_CSS = """
svg .fa{fill:#4c78a8}svg .fb{fill:#f58518}svg .ci{stroke:#222;stroke-width:1.2}svg .zero{stroke:#888}
td.ex{font-size:12px;color:#444;max-width:360px}.pill{border-radius:8px;padding:0 6px;font-size:11px;background:#eee}
"""


def forest_plot(rows: pd.DataFrame, a: str, b: str, width: int = 760, row: int = 17) -> str:
    """One line per feature: its log-odds ratio (a dot, blue when it fires more in A, orange in B)
    and the confidence interval (a whisker), against a 0 line; feature labels on the left."""
    if rows.empty:
        return '<p class="note">no feature separates the groups at these settings.</p>'
    names = [f"#{int(f)} {lab}" if lab else f"#{int(f)}" for f, lab in zip(rows["feature_id"], rows["label"])]
    lw = min(280, 12 + 6.2 * max(len(s) for s in names))
    lo = min(float(rows["log_odds_low"].min()), 0.0)
    hi = max(float(rows["log_odds_high"].max()), 0.0)
    pw, top = width - lw - 16, 8
    height = top + row * len(rows) + 34

    def sx(x: float) -> float:
        return lw + (x - lo) / (hi - lo or 1.0) * pw

    out = [f'<svg class="plot" viewBox="0 0 {width} {height}" role="img" aria-label="{attr(f"log-odds ratio, {a} vs {b}")}">',
           f'<line class="zero" x1="{sx(0):.1f}" x2="{sx(0):.1f}" y1="{top}" y2="{top + row * len(rows)}"/>']
    for i, (name, r) in enumerate(zip(names, rows.itertuples())):
        y = top + row * i + row / 2
        cls = "fa" if r.log_odds > 0 else "fb"
        tip = (f"{name}: log-odds {r.log_odds:.2f} [{r.log_odds_low:.2f}, {r.log_odds_high:.2f}], "
               f"{a} {r.rate_a:.1%} vs {b} {r.rate_b:.1%}, q={r.q_value:.2g}")
        out.append(f'<text x="{lw - 6:.1f}" y="{y + 4:.1f}" text-anchor="end">{esc(name[:44])}</text>'
                   f'<line class="ci" x1="{sx(r.log_odds_low):.1f}" x2="{sx(r.log_odds_high):.1f}" y1="{y:.1f}" y2="{y:.1f}"/>'
                   f'<circle class="{cls}" cx="{sx(r.log_odds):.1f}" cy="{y:.1f}" r="4"><title>{esc(tip)}</title></circle>')
    axis_y = top + row * len(rows)
    for t in nice_ticks(lo, hi, 6):
        out.append(f'<text x="{sx(t):.1f}" y="{axis_y + 14}" text-anchor="middle">{esc(num(t))}</text>')
    out.append(f'<text x="{lw + pw / 2:.1f}" y="{axis_y + 30}" text-anchor="middle" class="axt">'
               f'{esc(f"log-odds ratio (← more in {b} · more in {a} →)")}</text></svg>')
    return "".join(out)


def _examples(texts) -> str:
    items = list(texts) if texts is not None else []
    return "<br>".join(esc(t if len(t) <= 160 else t[:157] + "…") for t in items) or '<span class="note">none</span>'


def _feature_table(rows: pd.DataFrame, a: str, b: str) -> str:
    head = ["feature", "label", "verdict", f"rate {a}", f"rate {b}", "log-odds [CI]", "q", f"top texts in {a}",
            f"top texts in {b}"]
    body = []
    for r in rows.itertuples():
        verdict = f'<span class="pill">{esc(r.verdict)}</span>' if r.verdict else ""
        coh = "" if not (isinstance(r.coherence, float) and math.isfinite(r.coherence)) else f" coh {r.coherence:.2f}"
        body.append(f"<tr><td>#{int(r.feature_id)}</td><td>{esc(r.label)}</td><td>{verdict}{esc(coh)}</td>"
                    f'<td class="n">{r.rate_a:.2%}</td><td class="n">{r.rate_b:.2%}</td>'
                    f'<td class="n">{r.log_odds:.2f} [{r.log_odds_low:.2f}, {r.log_odds_high:.2f}]</td>'
                    f'<td class="n">{r.q_value:.2g}</td><td class="ex">{_examples(r.examples_a)}</td>'
                    f'<td class="ex">{_examples(r.examples_b)}</td></tr>')
    return ('<table class="cmp"><thead><tr>' + "".join(f"<th>{esc(h)}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(body) + "</tbody></table>")


def _page(title: str, sections: dict[str, str]) -> str:
    nav = "".join(f'<a href="#{attr(k.lower().replace(" ", "-"))}">{esc(k)}</a>' for k in sections)
    body = "\n".join(f'<section id="{attr(k.lower().replace(" ", "-"))}"><h2>{esc(k)}</h2>\n{v}\n</section>'
                     for k, v in sections.items())
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{esc(title)}</title>\n<style>{CSS}{HEATMAP_CSS}{EXTRA_CSS}</style>\n</head>\n<body>\n"
            f"<header><h1>{esc(title)}</h1><nav>{nav}</nav></header>\n<main>\n{body}\n</main>\n</body>\n</html>\n")


def render_diff_page(res: DiffResult) -> str:
    s, summ = res.settings, res.summary()
    overview = (f"<p>{esc(res.a)}: {res.n_a:,} texts · {esc(res.b)}: {res.n_b:,} texts · run <code>{esc(res.run_dir)}</code> "
                f"({esc(res.model_name)})</p><p><b>{summ['separating']}</b> of {summ['features']} features separate "
                f"the groups: {summ['more_in_a']} fire more in {esc(res.a)}, {summ['more_in_b']} more in {esc(res.b)} "
                f"(two-sided Fisher exact test, Benjamini–Hochberg q &lt; {s.alpha}, |log-odds ratio| ≥ "
                f"{s.min_log_odds}; {1 - s.alpha:.0%} Wald intervals with the Haldane +½ correction).</p>")
    top_a, top_b = res.top(res.a), res.top(res.b)
    plot = forest_plot(pd.concat([top_a, top_b.iloc[::-1]]), res.a, res.b)
    return _page(f"sae-diff: {res.a} vs {res.b}", {
        "Overview": overview, "Plot": plot,
        f"More in {res.a}": _feature_table(top_a, res.a, res.b),
        f"More in {res.b}": _feature_table(top_b, res.a, res.b)})


def render_matrix_page(res: MatrixResult) -> str:
    s = res.settings
    names = [f"{d} ({n:,})" for d, n in zip(res.domains, res.sizes)]
    vals = res.separating.astype(np.float64)
    np.fill_diagonal(vals, np.nan)
    text = np.where(np.eye(len(names), dtype=bool), "", res.separating.astype(str))
    note = (f"<p class=\"note\">Cell: features that separate the row's domain from the column's (Fisher exact, "
            f"BH q &lt; {s.alpha}, |log-odds ratio| ≥ {s.min_log_odds}); row labels give each domain's text count.</p>")
    more = np.where(np.eye(len(names), dtype=bool), "", res.more_in_row.astype(str))
    return _page("sae-diff: domain × domain", {
        "Separating features": note + heatmap(names, res.domains, vals, text, caption="separating features"),
        "More in the row's domain": heatmap(names, res.domains, res.more_in_row.astype(np.float64), more,
                                            caption="features firing more in the row's domain")})
