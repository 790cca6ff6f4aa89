"""Plot geometry for the pages' inline SVG: histogram, horizontal bars, heatmap, forest plot.

Each function computes a plain dict (coordinates, ticks, captions, CSS classes) that a macro of
templates/plots.html.j2 draws as one `<svg>` with a viewBox, so the browser scales it crisply to the
page width, offline (no plotting library, no script). Python does the arithmetic, the template the
markup, and the template's autoescape covers every caption. Coordinates are rounded to 0.1 px to
keep large plots small; colours come from CSS classes (series `s0..s2`, domains `c0..cN`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .fmt import num

M_LEFT, M_RIGHT, M_TOP, M_BOTTOM = 46, 12, 10, 36


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About n round tick values covering [lo, hi] (1, 2, 5 x 10^k steps)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, t = [], first
    while t <= hi + 1e-9 * step:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _r(x: float) -> float:
    return round(float(x), 1)


def _label_width(names: Sequence[str], per_char: float = 6.4, cap: float = 230) -> float:
    """Room for the longest category name left of a plot (long domain names stay readable)."""
    return min(cap, 12 + per_char * max((len(s) for s in names), default=4))


def _axes(width, height, xticks, sx, yticks, sy, xlabel, ylabel) -> dict:
    pw, ph = width - M_LEFT - M_RIGHT, height - M_TOP - M_BOTTOM
    return {
        "left": M_LEFT,
        "top": M_TOP,
        "pw": pw,
        "ph": ph,
        "bottom": M_TOP + ph,
        "xticks": [(_r(sx(t)), num(t)) for t in xticks],
        "yticks": [(_r(sy(t)), num(t)) for t in yticks],
        "xlabel": xlabel,
        "ylabel": ylabel,
        "xlabel_y": height - 4,
        "mid_x": _r(M_LEFT + pw / 2),
        "mid_y": _r(M_TOP + ph / 2),
    }


def histogram(
    series: Sequence[tuple[str, np.ndarray, str]],
    bins: int = 40,
    lo: float | None = None,
    hi: float | None = None,
    width: int = 640,
    height: int = 220,
    xlabel: str = "",
    ylabel: str = "features",
    vlines: Sequence[tuple[float, str]] = (),
) -> dict:
    """Histogram of one series (filled bars) or several (overlaid step lines, comparable shapes).

    series: (name, values, css class) triples; non-finite values are ignored.
    vlines: (x, caption) reference lines, e.g. chance level or the dense-feature threshold.
    """
    vals = [np.asarray(v, dtype=np.float64) for _, v, _ in series]
    vals = [v[np.isfinite(v)] for v in vals]
    allv = np.concatenate(vals) if vals else np.zeros(0)
    lo = (float(allv.min()) if allv.size else 0.0) if lo is None else lo
    hi = (float(allv.max()) if allv.size else 1.0) if hi is None else hi
    hi = lo + 1.0 if hi <= lo else hi
    edges = np.linspace(lo, hi, bins + 1)
    counts = [np.histogram(np.clip(v, lo, hi), bins=edges)[0] for v in vals]
    ymax = max([int(c.max()) for c in counts if c.size] + [1])
    pw, ph = width - M_LEFT - M_RIGHT, height - M_TOP - M_BOTTOM

    def sx(x):
        return M_LEFT + (x - lo) / (hi - lo) * pw

    def sy(y):
        return M_TOP + ph - y / ymax * ph

    yt = [t for t in nice_ticks(0, ymax, 4) if float(t).is_integer()]
    bars, steps = [], []
    if len(series) == 1:
        (name, _, cls), c = series[0], counts[0]
        bars = [
            {
                "x": _r(sx(edges[i])),
                "y": _r(sy(k)),
                "w": _r(max(sx(edges[i + 1]) - sx(edges[i]) - 0.6, 0.6)),
                "h": _r(sy(0) - sy(k)),
                "cls": cls,
                "title": f"{num(edges[i])} – {num(edges[i + 1])}: {int(k)} {name}",
            }
            for i, k in enumerate(c)
            if k
        ]
    else:
        for (name, _, cls), c in zip(series, counts):
            pts = [f"{sx(edges[0]):.1f},{sy(0):.1f}"]
            pts += [f"{sx(edges[i]):.1f},{sy(k):.1f} {sx(edges[i + 1]):.1f},{sy(k):.1f}" for i, k in enumerate(c)]
            pts.append(f"{sx(edges[-1]):.1f},{sy(0):.1f}")
            steps.append({"cls": cls, "name": name, "points": " ".join(pts)})
    return {
        "width": width,
        "height": height,
        "label": f"histogram: {xlabel}",
        "axes": _axes(width, height, nice_ticks(lo, hi, 6), sx, yt, sy, xlabel, ylabel),
        "bars": bars,
        "steps": steps,
        "vlines": [{"x": _r(sx(x)), "caption": cap} for x, cap in vlines if lo <= x <= hi],
    }


def hbar(
    labels: Sequence[str], values: Sequence[float], classes: Sequence[str], width: int = 640, row: int = 18
) -> dict:
    """Horizontal bar chart with category names on the left."""
    lw = _label_width(labels)
    vmax = max([float(v) for v in values if math.isfinite(float(v))] + [1e-12])
    bw = width - lw - 60
    rows = []
    for i, (lab, v, c) in enumerate(zip(labels, values, classes)):
        y, w = 4 + i * row, max(float(v), 0.0) / vmax * bw
        rows.append(
            {
                "label": lab,
                "value": num(v),
                "cls": c,
                "ty": _r(y + row * 0.68),
                "y": y + 2,
                "w": _r(w),
                "h": row - 5,
                "vx": _r(lw + w + 4),
            }
        )
    return {"width": width, "height": len(rows) * row + 8, "label": "bar chart", "lw": _r(lw), "rows": rows}


def heatmap(
    rows: Sequence[str],
    cols: Sequence[str],
    values: np.ndarray,
    text: np.ndarray | None = None,
    vmax: float | None = None,
    cell: int = 46,
    caption: str = "",
) -> dict:
    """A matrix as shaded cells: one colour, opacity = value / vmax, the value written in each cell
    (text, when given, replaces the written value, e.g. counts beside fractions)."""
    values = np.asarray(values, dtype=np.float64)
    vmax = vmax or (float(np.nanmax(values)) if np.isfinite(values).any() else 1.0) or 1.0
    lw = _label_width(rows)
    # Column titles slant up and to the right at 40°: room above the cells and right of the last.
    slant = min(230, 6.4 * max((len(s) for s in cols), default=4))
    th, right = 14 + 0.64 * slant, max(10, 0.77 * slant - cell / 2)
    out_rows = []
    for i, r in enumerate(rows):
        y = th + cell * i
        cells = []
        for j, c in enumerate(cols):
            v = values[i, j]
            op = 0.0 if not np.isfinite(v) else min(max(v / vmax, 0.0), 1.0)
            shown = str(text[i, j]) if text is not None else num(v, 2)
            cells.append(
                {
                    "x": _r(lw + cell * j),
                    "opacity": f"{max(op, 0.03):.3f}",
                    "shown": shown,
                    "title": f"{r} → {c}: {shown}",
                    "white": op > 0.55,
                    "tx": _r(lw + cell * j + (cell - 2) / 2),
                }
            )
        out_rows.append({"name": r, "y": _r(y), "ty": _r(y + cell / 2 + 4), "vy": _r(y + cell / 2 + 3), "cells": cells})
    return {
        "width": int(lw + cell * len(cols) + right),
        "height": int(th + cell * len(rows) + 6),
        "label": f"heatmap: {caption}",
        "lw": _r(lw - 6),
        "size": cell - 2,
        "cols": [{"x": _r(lw + cell * (j + 0.5)), "y": _r(th - 6), "name": c} for j, c in enumerate(cols)],
        "rows": out_rows,
    }


def forest(items: Sequence[dict], xlabel: str, caption: str, width: int = 760, row: int = 17) -> dict:
    """One line per item: an estimate (a dot of class `cls`) and its interval (a whisker), against
    a 0 line, names on the left. items: dicts with name, est, low, high, cls, title."""
    lw = min(280, 12 + 6.2 * max((len(it["name"]) for it in items), default=4))
    lo = min([float(it["low"]) for it in items] + [0.0])
    hi = max([float(it["high"]) for it in items] + [0.0])
    pw, top = width - lw - 16, 8

    def sx(x: float) -> float:
        return lw + (x - lo) / (hi - lo or 1.0) * pw

    axis_y = top + row * len(items)
    return {
        "width": width,
        "height": axis_y + 34,
        "label": caption,
        "zero": _r(sx(0)),
        "top": top,
        "axis_y": axis_y,
        "lw": _r(lw - 6),
        "mid_x": _r(lw + pw / 2),
        "xlabel": xlabel,
        "ticks": [(_r(sx(t)), num(t)) for t in nice_ticks(lo, hi, 6)],
        "rows": [
            {
                "name": it["name"][:44],
                "y": _r(top + row * i + row / 2),
                "x": _r(sx(it["est"])),
                "x0": _r(sx(it["low"])),
                "x1": _r(sx(it["high"])),
                "cls": it["cls"],
                "title": it["title"],
            }
            for i, it in enumerate(items)
        ],
    }
