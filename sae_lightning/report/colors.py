"""One colour per domain, shared by the feature map, the domain-share bars and the legends.

Colours are emitted once as CSS classes (`.c0 ... .cN`) so thousands of SVG circles and bar
segments carry a short class name instead of repeating a hex code: this keeps big pages small.
"""
from __future__ import annotations

from .fmt import attr, esc

# Tableau-20 without its greys (grey is reserved for dead features / "other").
PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22",
    "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2",
    "#dbdb8d", "#9edae5",
]
DEAD = "#c7c7c7"


class DomainColors:
    """Stable domain -> CSS class mapping (sorted names, so reruns get the same colours)."""

    def __init__(self, domains):
        self.domains = sorted({d for d in domains if d})
        self._cls = {d: f"c{i}" for i, d in enumerate(self.domains)}

    def cls(self, domain: str | None) -> str:
        return self._cls.get(domain or "", "cx")  # cx: unknown domain, grey

    def css(self) -> str:
        rules = [f".c{i}{{fill:{PALETTE[i % len(PALETTE)]};background:{PALETTE[i % len(PALETTE)]}}}"
                 for i in range(len(self.domains))]
        rules.append(f".cx,.cdead{{fill:{DEAD};background:{DEAD}}}")
        return "\n".join(rules)

    def legend(self, extra: list[tuple[str, str]] = ()) -> str:
        """HTML legend: a swatch and the name of every domain (+ extra (label, class) pairs)."""
        items = [(d, self._cls[d]) for d in self.domains] + list(extra)
        return '<div class="legend">' + "".join(
            f'<span><i class="sw {attr(c)}"></i>{esc(name)}</span>' for name, c in items
        ) + "</div>"
