"""The Jinja2 environment of every page: templates of the calling package first, then the shared
ones here (page.html.j2, plots.html.j2, parts.html.j2, page.css), with autoescape on for HTML.

Autoescape is what keeps run data (labels, texts, domain names, paths) from injecting markup: no
Python code builds HTML, so nothing needs to remember to escape. Markdown templates (`*.md.j2`)
are not HTML-escaped by the engine; their cells go through the `md` filter instead. `tojson` is
made compact, keeps non-ASCII text as it is (Greek or CJK would triple in size as \\uXXXX), and
refuses NaN (not JSON); Jinja's `tojson` already writes `<`, `>`, `&` and `'` as \\u escapes, so
embedded data can never close its <script> tag.
"""

from __future__ import annotations

from functools import cache

from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined

from .colors import DEAD, DomainColors
from .fmt import md_cell, num, pct


def _autoescape(name: str | None) -> bool:
    return not (name or "").endswith(".md.j2")


@cache
def environment(package: str, *also: str) -> Environment:
    """The environment for `package`'s templates/ folder, then those of the `also` packages (a page
    built from other pages' pieces: sae-serve uses the diff's), the shared templates last."""
    loaders = [PackageLoader(p, "templates") for p in (package, *also, "sae_lightning.pages")]
    env = Environment(
        loader=ChoiceLoader(loaders),
        autoescape=_autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(num=num, pct=pct, md=md_cell)
    env.policies["json.dumps_kwargs"] = {"ensure_ascii": False, "separators": (",", ":"), "allow_nan": False}
    return env


def render(
    package: str,
    template: str,
    *,
    title: str,
    sections: list[tuple[str, str]],
    colors: DomainColors | None = None,
    also: tuple[str, ...] = (),
    **context,
) -> str:
    """Render a page that extends page.html.j2: `sections` are (id, title) pairs in page order (the
    nav bar and each section's heading); `colors` writes the domain classes c0..cN; `also` are
    more template packages to look in (environment())."""
    return (
        environment(package, *also)
        .get_template(template)
        .render(
            title=title,
            sections=sections,
            titles=dict(sections),
            palette=colors.palette() if colors else [],
            dead_colour=DEAD,
            **context,
        )
    )


def render_plot(kind: str, plot: dict) -> str:
    """One plot of plots.html.j2 alone, as inline SVG (for pages made elsewhere, e.g. the docs' Markdown)."""
    return str(getattr(environment("sae_lightning.pages").get_template("plots.html.j2").module, kind)(plot))
