"""Tiny inline-SVG plot primitives (no matplotlib, no JS): histogram and horizontal bars.

Each function returns one `<svg>` string with a viewBox, so the browser scales it crisply to the
page width. Coordinates are rounded to 0.1 px to keep large plots (thousands of points) small.
Colours come from CSS classes (series `s0..s2`, domains `c0..cN`), never inline hex codes.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .fmt import attr, esc, num

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


def _open(width: int, height: int, label: str, cls: str = "plot") -> str:
    # No xmlns: inline SVG in HTML5 needs none, and the page then holds no URL at all of its own.
    return f'<svg class="{cls}" viewBox="0 0 {width} {height}" role="img" aria-label="{attr(label)}">'


def _axes(width, height, x0, x1, y1, xlabel, ylabel, xticks, sx, yticks, sy, xfmt=num) -> list[str]:
    """Frame, ticks and axis titles for a plot with scale functions sx, sy."""
    pw, ph = width - M_LEFT - M_RIGHT, height - M_TOP - M_BOTTOM
    out = [f'<rect class="frame" x="{M_LEFT}" y="{M_TOP}" width="{pw}" height="{ph}"/>']
    for t in xticks:
        x = sx(t)
        out.append(f'<line class="tick" x1="{x:.1f}" x2="{x:.1f}" y1="{M_TOP + ph}" y2="{M_TOP + ph + 4}"/>'
                   f'<text x="{x:.1f}" y="{M_TOP + ph + 15}" text-anchor="middle">{esc(xfmt(t))}</text>')
    for t in yticks:
        y = sy(t)
        out.append(f'<line class="tick" x1="{M_LEFT - 4}" x2="{M_LEFT}" y1="{y:.1f}" y2="{y:.1f}"/>'
                   f'<text x="{M_LEFT - 6}" y="{y + 3.5:.1f}" text-anchor="end">{esc(num(t))}</text>')
    if xlabel:
        out.append(f'<text x="{M_LEFT + pw / 2:.1f}" y="{height - 4}" text-anchor="middle" class="axt">{esc(xlabel)}</text>')
    if ylabel:
        out.append(f'<text transform="translate(11 {M_TOP + ph / 2:.1f}) rotate(-90)" text-anchor="middle" '
                   f'class="axt">{esc(ylabel)}</text>')
    return out


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
) -> str:
    """Histogram of one series (filled bars) or several (overlaid step lines, comparable shapes).

    series: (name, values, css class) triples; non-finite values are ignored.
    vlines: (x, caption) reference lines, e.g. chance level or the dense-feature threshold.
    """
    vals = [np.asarray(v, dtype=np.float64) for _, v, _ in series]
    vals = [v[np.isfinite(v)] for v in vals]
    allv = np.concatenate(vals) if vals else np.zeros(0)
    if lo is None:
        lo = float(allv.min()) if allv.size else 0.0
    if hi is None:
        hi = float(allv.max()) if allv.size else 1.0
    if hi <= lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, bins + 1)
    counts = [np.histogram(np.clip(v, lo, hi), bins=edges)[0] for v in vals]
    ymax = max([int(c.max()) for c in counts if c.size] + [1])
    pw, ph = width - M_LEFT - M_RIGHT, height - M_TOP - M_BOTTOM

    def sx(x):
        return M_LEFT + (x - lo) / (hi - lo) * pw

    def sy(y):
        return M_TOP + ph - y / ymax * ph

    out = [_open(width, height, f"histogram: {xlabel}")]
    yt = [t for t in nice_ticks(0, ymax, 4) if float(t).is_integer()]
    out += _axes(width, height, lo, hi, ymax, xlabel, ylabel, nice_ticks(lo, hi, 6), sx, yt, sy)
    if len(series) == 1:
        (name, _, cls), c = series[0], counts[0]
        for i, k in enumerate(c):
            if k:
                x0, x1 = sx(edges[i]), sx(edges[i + 1])
                out.append(f'<rect class="{attr(cls)}" x="{x0:.1f}" y="{sy(k):.1f}" width="{max(x1 - x0 - 0.6, 0.6):.1f}" '
                           f'height="{sy(0) - sy(k):.1f}"><title>{esc(num(edges[i]))} – {esc(num(edges[i + 1]))}: '
                           f'{int(k)} {esc(name)}</title></rect>')
    else:
        for (name, _, cls), c in zip(series, counts):
            pts = [f"{sx(edges[0]):.1f},{sy(0):.1f}"]
            for i, k in enumerate(c):
                pts.append(f"{sx(edges[i]):.1f},{sy(k):.1f} {sx(edges[i + 1]):.1f},{sy(k):.1f}")
            pts.append(f"{sx(edges[-1]):.1f},{sy(0):.1f}")
            out.append(f'<polyline class="step {attr(cls)}" points="{" ".join(pts)}"><title>{esc(name)}</title></polyline>')
    for x, cap in vlines:
        if lo <= x <= hi:
            out.append(f'<line class="ref" x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{M_TOP}" y2="{M_TOP + ph}"/>'
                       f'<text class="reft" x="{sx(x) + 3:.1f}" y="{M_TOP + 11}">{esc(cap)}</text>')
    out.append("</svg>")
    return "".join(out)


def hbar(labels: Sequence[str], values: Sequence[float], classes: Sequence[str], width: int = 640,
         row: int = 18, value_fmt=num) -> str:
    """Horizontal bar chart with category names on the left (long domain names stay readable)."""
    n = len(labels)
    lw = min(230, 12 + 6.4 * max((len(s) for s in labels), default=4))
    vmax = max([float(v) for v in values if math.isfinite(float(v))] + [1e-12])
    height = n * row + 8
    bw = width - lw - 60
    out = [_open(width, height, "bar chart")]
    for i, (lab, v, c) in enumerate(zip(labels, values, classes)):
        y = 4 + i * row
        w = max(float(v), 0.0) / vmax * bw
        out.append(f'<text x="{lw - 6:.1f}" y="{y + row * 0.68:.1f}" text-anchor="end">{esc(lab)}</text>'
                   f'<rect class="{attr(c)}" x="{lw:.1f}" y="{y + 2}" width="{w:.1f}" height="{row - 5}"/>'
                   f'<text x="{lw + w + 4:.1f}" y="{y + row * 0.68:.1f}">{esc(value_fmt(v))}</text>')
    out.append("</svg>")
    return "".join(out)
