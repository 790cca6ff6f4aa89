"""Assemble report.html: one self-contained HTML5 page (inline CSS, SVG and a little JS).

Section ids are a contract (tests and links rely on them): overview, metrics, density,
label-quality, feature-map, families (only when families.parquet exists), features.
"""
from __future__ import annotations

from .assets import CSS, JS
from .cards import card_order, features_section_body
from .colors import DomainColors
from .fmt import esc
from .load import RunData
from . import sections

SECTION_TITLES = {
    "overview": "Overview",
    "metrics": "Metrics",
    "density": "Feature density",
    "label-quality": "Label quality vs baselines",
    "feature-map": "Feature map (decoder directions)",
    "families": "Feature families",
    "features": "Features",
}


def render_page(run: RunData) -> str:
    # Text domains too: a top text may come from a domain that is no feature's main domain.
    text_domains = [d for lst in (run.cols.get("top_domains") or []) for d in (lst or [])]
    colors = DomainColors(sections.domains_of(run) + text_domains)
    carded_rows, _, _ = card_order(run)
    carded = {int(run.feature_id[i]) for i in carded_rows}
    body = {
        "overview": sections.overview(run, colors),
        "metrics": sections.metrics(run),
        "density": sections.density(run),
        "label-quality": sections.label_quality_section(run),
        "feature-map": sections.feature_map(run, colors, carded),
    }
    if run.families is not None:
        body["families"] = sections.families(run, carded)
    body["features"] = features_section_body(run, colors)

    name = run.run_dir.resolve().name
    nav = "".join(f'<a href="#{sid}">{esc(SECTION_TITLES[sid])}</a>' for sid in body)
    secs = "\n".join(f'<section id="{sid}"><h2>{esc(SECTION_TITLES[sid])}</h2>\n{html}\n</section>'
                     for sid, html in body.items())
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>SAE report: {esc(name)}</title>\n<style>{CSS}{colors.css()}</style>\n</head>\n<body>\n"
        f"<header><h1>SAE report: {esc(name)}</h1><nav>{nav}</nav></header>\n<main>\n{secs}\n</main>\n"
        f"<script>{JS}</script>\n</body>\n</html>\n"
    )
