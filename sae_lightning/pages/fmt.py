"""Number formatting shared by every page and summary.md, registered as Jinja filters (env.py).

HTML escaping is not done here: the templates autoescape every value (env.py). Markdown has no
autoescape, so `md_cell` escapes a summary.md table cell itself.
"""

from __future__ import annotations

import html
import math
from typing import Any


def is_num(x: Any) -> bool:
    """A real, finite number (not bool, not None, not NaN/inf)."""
    if isinstance(x, bool) or x is None:
        return False
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def num(x: Any, digits: int = 4) -> str:
    """Short human form of a metric value: ints with separators, floats to `digits` significant."""
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, int):
        return f"{x:,}"
    try:
        f = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(f):
        return "n/a"
    if math.isinf(f):
        return "∞" if f > 0 else "-∞"
    if f == int(f) and abs(f) >= 1000:
        return f"{int(f):,}"
    return f"{f:.{digits}g}"


def pct(x: Any) -> str:
    """A fraction as a percentage, keeping two significant digits for rare features."""
    if not is_num(x):
        return "n/a"
    p = 100.0 * float(x)
    if p == 0:
        return "0%"
    if p >= 10:
        return f"{p:.1f}%"
    return f"{p:.2g}%"


def md_cell(x: Any) -> str:
    """A Markdown table cell: no pipes or line breaks may leak from labels, and no raw HTML
    (Markdown renders entities, so `&lt;` still reads as `<`)."""
    s = html.escape(str(x), quote=False).replace("\\", "\\\\").replace("|", "\\|")
    return s.replace("\r", " ").replace("\n", " ")
