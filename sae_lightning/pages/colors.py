"""One colour per domain (or per run), shared by the feature map, bars, step lines and legends.

Colours reach a page once, as CSS classes `.c0 ... .cN` written by the base template from
`palette()`: thousands of SVG shapes and card segments then carry a short class name instead of a
hex code, which keeps big pages small.
"""

from __future__ import annotations

# Tableau-20 without its greys (grey is reserved for dead features / "other").
PALETTE = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
    "#aec7e8",
    "#ffbb78",
    "#98df8a",
    "#ff9896",
    "#c5b0d5",
    "#c49c94",
    "#f7b6d2",
    "#dbdb8d",
    "#9edae5",
]
DEAD = "#c7c7c7"


class DomainColors:
    """Stable domain -> CSS class mapping (sorted names, so reruns get the same colours)."""

    def __init__(self, domains):
        self.domains = sorted({d for d in domains if d})
        self._cls = {d: f"c{i}" for i, d in enumerate(self.domains)}

    def cls(self, domain: str | None) -> str:
        return self._cls.get(domain or "", "cx")  # cx: unknown domain, grey

    def palette(self) -> list[str]:
        """Hex colour of class c<i>, i = 0 .. len(domains) - 1 (the base template's CSS)."""
        return [PALETTE[i % len(PALETTE)] for i in range(len(self.domains))]

    def legend(self, extra: list[tuple[str, str]] = ()) -> list[tuple[str, str]]:
        """(name, class) of every domain, then the extra pairs: the `legend` macro's items."""
        return [(d, self._cls[d]) for d in self.domains] + list(extra)
