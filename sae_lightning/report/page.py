"""Assemble report.html from the Jinja2 template: one self-contained page (inline CSS, SVG, JSON
data and the script that draws the feature map and the feature cards from it).

Section ids are a contract (tests and links rely on them): overview, metrics, density,
label-quality, feature-map, families (only when families.parquet exists), features.
Jinja2's autoescape is on: only the sections' own HTML (built from escaped parts) and the
script-safe JSON are marked safe.
"""
from __future__ import annotations

from jinja2 import Environment, PackageLoader, select_autoescape

from . import sections
from .assets import CSS, JS
from .colors import DomainColors
from .feature_data import feature_data, to_script_json
from .load import RunData

SECTION_TITLES = {
    "overview": "Summary",
    "metrics": "Metrics",
    "density": "Feature density",
    "label-quality": "Label quality vs baselines",
    "feature-map": "Feature map (decoder directions)",
    "families": "Feature families",
    "features": "Features",
}
_env = Environment(loader=PackageLoader("sae_lightning.report", "templates"),
                   autoescape=select_autoescape(["html", "j2"]))


def render_page(run: RunData) -> str:
    domains = sections.domains_of(run)
    colors = DomainColors(domains)
    body = {
        "overview": sections.overview(run, colors),
        "metrics": sections.metrics(run),
        "density": sections.density(run),
        "label-quality": sections.label_quality_section(run),
        "feature-map": sections.feature_map(run, colors),
    }
    if run.families is not None:
        body["families"] = sections.families(run)
    body["features"] = sections.features_controls(run)
    return _env.get_template("report.html.j2").render(
        name=run.run_dir.resolve().name,
        css=CSS, domain_css=colors.css(), js=JS,
        sections=[{"id": sid, "title": SECTION_TITLES[sid], "html": html} for sid, html in body.items()],
        data_json=to_script_json(feature_data(run, colors.domains)),
    )
