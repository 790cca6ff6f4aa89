"""compare.html: one self-contained page for `sae-compare` (inline CSS and SVG, no JS needed).

Built from report/ primitives (svg.histogram, svg.hbar, DomainColors, esc/num/pct, the report's
CSS) plus the one plot they lack: a heatmap. Section ids: runs, overlap, best-match, classes,
shared, specific, joint (each only when it has something to show).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from . import svg
from .assets import CSS
from .colors import PALETTE, DomainColors
from .fmt import attr, esc, num, pct
from .sections import na

if TYPE_CHECKING:
    from ..interpret.compare import ComparisonResult

MAX_GROUPS, MAX_SPECIFIC = 300, 40

EXTRA_CSS = """
svg .hm{fill:#4c78a8}svg text.hmw{fill:#fff}svg text.hmv{font-size:10.5px}
table.cmp td{max-width:260px}table.cmp td small{color:var(--mut)}
"""


def heatmap(rows: Sequence[str], cols: Sequence[str], values: np.ndarray, text: np.ndarray | None = None,
            vmax: float | None = None, cell: int = 46, caption: str = "") -> str:
    """A matrix as shaded cells: one colour, opacity = value / vmax, the value written in each cell
    (text, when given, replaces the written value, e.g. counts beside fractions)."""
    values = np.asarray(values, dtype=np.float64)
    vmax = vmax or (float(np.nanmax(values)) if np.isfinite(values).any() else 1.0) or 1.0
    lw = min(230, 12 + 6.4 * max((len(s) for s in rows), default=4))
    # Column titles slant up and to the right at 40°: room above the cells and right of the last.
    slant = min(230, 6.4 * max((len(s) for s in cols), default=4))
    th, right = 14 + 0.64 * slant, max(10, 0.77 * slant - cell / 2)
    width, height = int(lw + cell * len(cols) + right), int(th + cell * len(rows) + 6)
    out = [f'<svg class="plot" viewBox="0 0 {width} {height}" role="img" aria-label="{attr("heatmap: " + caption)}"'
           f' style="max-width:{width}px">']
    for j, c in enumerate(cols):
        x = lw + cell * (j + 0.5)
        out.append(f'<text transform="translate({x:.1f} {th - 6:.1f}) rotate(-40)">{esc(c)}</text>')
    for i, r in enumerate(rows):
        y = th + cell * i
        out.append(f'<text x="{lw - 6:.1f}" y="{y + cell / 2 + 4:.1f}" text-anchor="end">{esc(r)}</text>')
        for j, c in enumerate(cols):
            v = values[i, j]
            op = 0.0 if not np.isfinite(v) else min(max(v / vmax, 0.0), 1.0)
            shown = text[i, j] if text is not None else num(v, 2)
            out.append(f'<rect class="hm" x="{lw + cell * j:.1f}" y="{y:.1f}" width="{cell - 2}" height="{cell - 2}" '
                       f'fill-opacity="{max(op, 0.03):.3f}"><title>{esc(r)} → {esc(c)}: {esc(shown)}</title></rect>'
                       f'<text class="hmv{" hmw" if op > 0.55 else ""}" x="{lw + cell * j + (cell - 2) / 2:.1f}" '
                       f'y="{y + cell / 2 + 3:.1f}" text-anchor="middle">{esc(shown)}</text>')
    out.append("</svg>")
    return "".join(out)


def _table(head: Sequence[str], rows: list[list[str]], cls: str = "cmp") -> str:
    """Cells are HTML already (callers escape what came from a run)."""
    return (f'<table class="{cls}"><thead><tr>{"".join(f"<th>{esc(h)}</th>" for h in head)}</tr></thead><tbody>'
            + "".join("<tr>" + "".join(rows_i) + "</tr>" for rows_i in rows) + "</tbody></table>")


def _n(x) -> str:
    return f'<td class="n">{esc(num(x, 3))}</td>'


def _feat(fid: int, label: str) -> str:
    return f'#{int(fid)} {esc(label)}' if label else f'#{int(fid)} <small>(no label)</small>'


def runs_section(res: ComparisonResult, colors: DomainColors) -> str:
    rows = []
    for r in res.runs:
        doms = ", ".join(r.store_domains) if len(r.store_domains) <= 4 else f"{len(r.store_domains)} domains"
        rows.append([f'<td><i class="sw {colors.cls(r.name)}"></i>{esc(r.name)}</td>', f"<td>{esc(r.path)}</td>",
                     f"<td>{esc(doms)}</td>", f"<td>{esc(r.architecture)}</td>", _n(r.d_sae), _n(r.k),
                     _n(int(r.live.sum())), _n(sum(1 for s in r.labels if s)), _n(r.metrics.get("fve"))])
    first = res.runs[0]
    note = (f'<p class="note">Embedding model {esc(first.model_name)}, d_in {first.d_in}. A feature is present in '
            f'another run when that run has a live feature whose decoder row has cosine ≥ {num(res.threshold)} with '
            'its own; matches.parquet pairs the features one to one (Hungarian assignment on decoder cosine).</p>')
    warnings = "".join(f'<p class="na">{esc(w)}</p>' for w in res.warnings)
    return note + warnings + _table(["run", "folder", "text domains", "architecture", "d_sae", "k", "live", "labelled",
                                     "fve"], rows)


def overlap_section(res: ComparisonResult) -> str:
    counts = np.array([[int(round(res.overlap[i, j] * r.live.sum())) for j in range(len(res.runs))]
                       for i, r in enumerate(res.runs)])
    text = np.array([[pct(res.overlap[i, j]) if i != j else "–" for j in range(len(res.runs))]
                     for i in range(len(res.runs))], dtype=object)
    vals = res.overlap.copy()
    np.fill_diagonal(vals, np.nan)
    return ('<p class="note">Row run → column run: share of the row run\'s live features present in the column run '
            '(a live feature there with decoder cosine ≥ the threshold).</p>'
            + heatmap(res.names, res.names, vals, text=text, vmax=1.0, caption="feature overlap")
            + '<details><summary>feature counts</summary>'
            + _table([""] + res.names, [[f"<th>{esc(n)}</th>"] + [_n(int(c)) for c in row]
                                        for n, row in zip(res.names, counts)]) + "</details>")


def best_match_section(res: ComparisonResult, colors: DomainColors) -> str:
    f = res.features[~res.features["dead"]]
    series = [(n, f.loc[f["run"] == n, "best_match_cos"].to_numpy(float), colors.cls(n)) for n in res.names]
    return ('<p class="note">Per live feature, the highest decoder cosine to any live feature of another run '
            '(a feature the others lack scores low).</p>'
            + (colors.legend() if len(series) > 1 else "")
            + svg.histogram(series, bins=40, lo=-0.2 if any((s[1] < 0).any() for s in series) else 0.0, hi=1.0,
                            xlabel="best-match decoder cosine", vlines=[(res.threshold, "threshold")]))


def classes_section(res: ComparisonResult) -> str:
    counts = res.class_counts()
    rows = [[f"<td>{esc(n)}</td>"] + [_n(int(counts.loc[n, c])) for c in counts.columns] for n in res.names]
    need = max(1, int(np.ceil(res.settings["shared_fraction"] * (len(res.runs) - 1) - 1e-9)))
    return (f'<p class="note">universal: present in every other run; shared: in at least {need} of the '
            f'{len(res.runs) - 1} others; partial: in fewer; specific: in none (the domain\'s own feature); '
            'dead: never fired, not matched.</p>' + _table(["run", *counts.columns], rows))


def shared_section(res: ComparisonResult) -> str:
    f = res.features[res.features["group"] >= 0]
    if not len(f):
        return na(f"no feature is present in another run (decoder cosine ≥ {num(res.threshold)})")
    rows = []
    for gid, members in list(f.groupby("group", sort=True))[:MAX_GROUPS]:
        cells = []
        for n in res.names:
            m = members[members["run"] == n]
            cells.append("<td>" + "<br>".join(_feat(i, lab) for i, lab in zip(m["feature_id"], m["label"])) + "</td>")
        rows.append([_n(int(gid)), _n(members["run"].nunique()), _n(members["best_match_cos"].min())] + cells)
    more = len(f["group"].unique()) - MAX_GROUPS
    return ('<p class="note">Groups of features that are the same across runs (chains of nearest features with '
            'cosine ≥ the threshold; copies within a run included), largest first, labels side by side.</p>'
            + _table(["group", "runs", "min best cos", *res.names], rows)
            + (f'<p class="note">{more:,} more groups in feature_classes.parquet (column group).</p>' if more > 0 else ""))


def specific_section(res: ComparisonResult) -> str:
    out = ['<p class="note">Live features present in no other run, most frequent first.</p>']
    for n in res.names:
        f = res.features[(res.features["run"] == n) & (res.features["class"] == "specific")]
        f = f.sort_values("density", ascending=False, na_position="last", kind="stable")
        rows = [[f"<td>{_feat(i, lab)}</td>", f'<td class="n">{esc(pct(d))}</td>', _n(c)]
                for i, lab, d, c in zip(f["feature_id"], f["label"], f["density"], f["best_match_cos"])][:MAX_SPECIFIC]
        out.append(f"<details{' open' if len(res.runs) <= 3 else ''}><summary>{esc(n)}: {len(f):,} specific "
                   f"features</summary>" + (_table(["feature", "density", "best-match cos"], rows) if rows else "")
                   + "</details>")
    return "".join(out)


def joint_section(res: ComparisonResult, colors: DomainColors) -> str:
    out = []
    for j in res.joint:
        c = j.counts.sort_values("n_main", ascending=False, kind="stable")
        diag = np.diag(j.overlap).astype(float)
        frac = np.divide(j.overlap, diag[:, None], out=np.full(j.overlap.shape, np.nan), where=diag[:, None] > 0)
        text = np.array([[str(int(v)) for v in row] for row in j.overlap], dtype=object)
        s = res.settings
        out.append(
            f"<h3>{esc(j.run)}</h3>"
            f'<p class="note">From the features\' domain shares (activation mass per domain, train split). main: the '
            f'domain with the largest share; active: a share ≥ {num(s["min_share"])}; specific: main with a share ≥ '
            f'{num(s["specific_share"])}.</p>'
            + svg.hbar(list(c["domain"]), list(c["n_main"]), [colors.cls(d) for d in c["domain"]])
            + _table(["domain", "main", "active", "specific"],
                     [[f"<td>{esc(d)}</td>", _n(int(a)), _n(int(b)), _n(int(e))]
                      for d, a, b, e in zip(c["domain"], c["n_main"], c["n_active"], c["n_specific"])])
            + '<p class="note">Features active in both domains (count; shade: share of the row domain\'s active '
              'features).</p>' + heatmap(j.domains, j.domains, frac, text=text, vmax=1.0, caption="domain overlap"))
    return "".join(out)


TITLES = {"runs": "Runs", "overlap": "Domain × domain feature overlap", "best-match": "Best-match cosine",
          "classes": "Shared and domain-specific features", "shared": "Shared features, labels side by side",
          "specific": "Domain-specific features", "joint": "Joint SAEs: features per domain"}


def render_compare_page(res: ComparisonResult) -> str:
    names = res.names + [d for j in res.joint for d in j.domains]
    colors = DomainColors(names)
    body = {"runs": runs_section(res, colors)}
    if len(res.runs) > 1:
        body.update({"overlap": overlap_section(res), "best-match": best_match_section(res, colors),
                     "classes": classes_section(res), "shared": shared_section(res),
                     "specific": specific_section(res)})
    if res.joint:
        body["joint"] = joint_section(res, colors)
    elif any(r.joint for r in res.runs):
        body["joint"] = na("the joint run has no features.parquet with domain shares; label it with sae-label first")
    # Step lines of the multi-run histogram take their stroke from the domain colour.
    step_css = "".join(f"svg .step.c{i}{{stroke:{PALETTE[i % len(PALETTE)]}}}" for i in range(len(colors.domains)))
    title = "SAE comparison: " + ", ".join(res.names[:6]) + (" …" if len(res.names) > 6 else "")
    nav = "".join(f'<a href="#{k}">{esc(TITLES[k])}</a>' for k in body)
    secs = "\n".join(f'<section id="{k}"><h2>{esc(TITLES[k])}</h2>\n{v}\n</section>' for k, v in body.items())
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{esc(title)}</title>\n<style>{CSS}{EXTRA_CSS}{colors.css()}{step_css}</style>\n</head>\n<body>\n"
            f"<header><h1>{esc(title)}</h1><nav>{nav}</nav></header>\n<main>\n{secs}\n</main>\n</body>\n</html>\n")
