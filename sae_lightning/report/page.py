"""report.html from templates/report.html.j2: one self-contained page (inline CSS, SVG, JSON
data and the script that draws the feature map and the feature cards from it).

Section ids are a contract (tests and links rely on them): overview, metrics, density,
label-quality, feature-map, families (only when families.parquet exists), features.
Python computes each section's data (sections.py, feature_data.py); the template writes all the
markup, with autoescape on, so no text of the run can inject markup.
"""

from __future__ import annotations

from ..pages import render
from ..pages.colors import DomainColors
from . import sections
from .feature_data import feature_data
from .load import RunData
from .quality import NOT_MEASURED

SECTION_TITLES = {
    "overview": "Summary",
    "metrics": "Metrics",
    "density": "Feature density",
    "label-quality": "Label quality vs baselines",
    "feature-map": "Feature map (decoder directions)",
    "families": "Feature families",
    "features": "Features",
}


def render_page(run: RunData) -> str:
    colors = DomainColors(sections.domains_of(run))
    ids = [s for s in SECTION_TITLES if s != "families" or run.families is not None]
    return render(
        "sae_lightning.report",
        "report.html.j2",
        title=f"SAE report: {run.run_dir.resolve().name}",
        sections=[(s, SECTION_TITLES[s]) for s in ids],
        colors=colors,
        not_measured=NOT_MEASURED,
        overview=sections.overview(run, colors),
        metrics=sections.metrics(run),
        density=sections.density(run),
        quality=sections.label_quality_section(run),
        feature_map=sections.feature_map(run, colors),
        families=sections.families(run) if run.families is not None else None,
        controls=sections.features_controls(run),
        data=feature_data(run, colors.domains),
    )
