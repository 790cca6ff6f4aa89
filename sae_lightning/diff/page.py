"""diff.html and matrix.html from templates/: self-contained pages (inline CSS and SVG, no
script, no network) of what analysis.py computed. This module turns the results into plain
data (the forest plot's rows, table rows, heatmaps from pages/plots.py); the templates write the
markup on the shared page skeleton and SVG macros, autoescaped."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..pages import plots, render, render_plot
from .analysis import DiffResult, MatrixResult

EXAMPLE_CHARS = 160


def _slug(title: str) -> str:
    return title.lower().replace(" ", "-")


def _name(fid, label) -> str:
    return f"#{int(fid)} {label}" if label else f"#{int(fid)}"


def forest(rows: pd.DataFrame, a: str, b: str) -> dict | None:
    """Each feature's log-odds ratio (blue dot when it fires more in A, orange in B) and its
    confidence interval, against a 0 line; None when no feature separates the groups."""
    if rows.empty:
        return None
    items = [
        {
            "name": _name(r.feature_id, r.label),
            "est": r.log_odds,
            "low": r.log_odds_low,
            "high": r.log_odds_high,
            "cls": "fa" if r.log_odds > 0 else "fb",
            "title": (
                f"{_name(r.feature_id, r.label)}: log-odds {r.log_odds:.2f} [{r.log_odds_low:.2f}, "
                f"{r.log_odds_high:.2f}], {a} {r.rate_a:.1%} vs {b} {r.rate_b:.1%}, q={r.q_value:.2g}"
            ),
        }
        for r in rows.itertuples()
    ]
    return plots.forest(items, f"log-odds ratio (← more in {b} · more in {a} →)", f"log-odds ratio, {a} vs {b}")


def forest_svg(rows: pd.DataFrame, a: str, b: str) -> str:
    """The forest plot of `rows` alone, as inline SVG ("" when there is nothing to draw)."""
    plot = forest(rows, a, b)
    return "" if plot is None else render_plot("forest", plot)


def _examples(texts) -> list[str]:
    return [
        t if len(t) <= EXAMPLE_CHARS else t[: EXAMPLE_CHARS - 3] + "…"
        for t in (list(texts) if texts is not None else [])
    ]


def feature_rows(rows: pd.DataFrame) -> list[dict]:
    return [
        {
            "id": int(r.feature_id),
            "label": r.label,
            "verdict": r.verdict,
            "coherence": f" coh {r.coherence:.2f}"
            if isinstance(r.coherence, float) and math.isfinite(r.coherence)
            else "",
            "rate_a": f"{r.rate_a:.2%}",
            "rate_b": f"{r.rate_b:.2%}",
            "log_odds": f"{r.log_odds:.2f} [{r.log_odds_low:.2f}, {r.log_odds_high:.2f}]",
            "q": f"{r.q_value:.2g}",
            "examples_a": _examples(r.examples_a),
            "examples_b": _examples(r.examples_b),
        }
        for r in rows.itertuples()
    ]


def diff_context(res: DiffResult) -> dict:
    """What diff.html.j2 draws (sae-serve's Domains page draws the same): summary, forest plot and
    the two sides' feature tables."""
    top_a, top_b = res.top(res.a), res.top(res.b)
    s = res.settings
    return {
        "res": res,
        "summ": res.summary(),
        "alpha": s.alpha,
        "min_log_odds": s.min_log_odds,
        "level": f"{1 - s.alpha:.0%}",
        "plot": forest(pd.concat([top_a, top_b.iloc[::-1]]), res.a, res.b),
        "tables": [feature_rows(top_a), feature_rows(top_b)],
    }


def render_diff_page(res: DiffResult) -> str:
    titles = ["Overview", "Plot", f"More in {res.a}", f"More in {res.b}"]
    return render(
        "sae_lightning.diff",
        "diff.html.j2",
        title=f"sae-diff: {res.a} vs {res.b}",
        sections=[(_slug(t), t) for t in titles],
        ids=[_slug(t) for t in titles],
        **diff_context(res),
    )


def matrix_plots(res: MatrixResult) -> dict:
    """The matrix page's two heatmaps: separating features per pair, and those firing more in the row's domain."""
    names = [f"{d} ({n:,})" for d, n in zip(res.domains, res.sizes)]
    eye = np.eye(len(names), dtype=bool)
    vals = res.separating.astype(np.float64)
    np.fill_diagonal(vals, np.nan)
    return {
        "separating": plots.heatmap(
            names, res.domains, vals, np.where(eye, "", res.separating.astype(str)), caption="separating features"
        ),
        "more": plots.heatmap(
            names,
            res.domains,
            res.more_in_row.astype(np.float64),
            np.where(eye, "", res.more_in_row.astype(str)),
            caption="features firing more in the row's domain",
        ),
    }


def render_matrix_page(res: MatrixResult) -> str:
    titles = ["Separating features", "More in the row's domain"]
    return render(
        "sae_lightning.diff",
        "matrix.html.j2",
        title="sae-diff: domain × domain",
        sections=[(_slug(t), t) for t in titles],
        ids=[_slug(t) for t in titles],
        settings=res.settings,
        **matrix_plots(res),
    )
