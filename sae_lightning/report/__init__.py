"""Feature report of one finished run: report.html and summary.md of its current labelling
(`<run_dir>/labelings/<id>/`, mirrored at `<run_dir>/report.html`).

    from sae_lightning.report import write_report
    write_report("outputs/2025-01-01/12-00-00")   # -> Path to report.html

Reads only files of the run dir, through run_reader.RunReader. Needs metrics.json and a labelling's
features.parquet; everything else is optional and shown as "not available" when missing.

Files: load.py (read the run dir), verdicts.py (interpretable / mixed / weak / dead), quality.py
(label-quality tables), featuremap.py (spectral map of decoder rows), feature_data.py (the JSON the
page draws cards and the map from), sections.py (each section's data), page.py and summary.py
(render templates/report.html.j2 and templates/summary.md.j2; report.js draws the cards). The page
skeleton, stylesheet, plot geometry and SVG macros are shared with the other pages: ../pages/.
"""

from __future__ import annotations

from pathlib import Path

from ..run_dir import Labeling, RunDir
from .load import RunData, report_data
from .page import render_page
from .summary import render_summary

__all__ = ["write_report", "report_data", "render_page", "render_summary", "RunData"]


def write_report(run_dir: str | Path, labeling: Labeling | None = None) -> Path:
    """Write report.html and summary.md into the run's current labelling (or into `labeling`, one
    being written, before it is made current); return the path of the top-level report.html (the
    current labelling's, through <run>/current), or `labeling`'s own.

    Raises UserError with one line naming the missing or unreadable file when the run is not
    finished.
    """
    run = RunDir(run_dir)
    target = labeling or run.labeling()
    data = report_data(run_dir, target)
    # Through the one atomic writer: a crash never leaves a half page that looks complete.
    target.write_text(Labeling.REPORT, render_page(data))
    target.write_text(Labeling.SUMMARY, render_summary(data))
    if labeling is not None:
        return labeling.report
    run.publish()
    return run / Labeling.REPORT
