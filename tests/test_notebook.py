"""The exploration notebook runs top to bottom on a tiny real run (real kernel, real labels)."""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient


NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "explore_run.ipynb"


def test_default_run_writes_labels_families_and_report(tiny_labelled_run):
    import pandas as pd

    for name in ("features.parquet", "families.parquet", "report.html", "summary.md", "metrics.json"):
        assert (tiny_labelled_run / name).is_file(), name
    families = pd.read_parquet(tiny_labelled_run / "families.parquet")
    assert set(families.columns) >= {"family_id", "parent", "children", "label"}
    assert 'id="families"' in (tiny_labelled_run / "report.html").read_text()


def test_notebook_executes_on_a_finished_run(tiny_labelled_run, monkeypatch):
    monkeypatch.setenv("SAE_RUN_DIR", str(tiny_labelled_run))
    monkeypatch.setenv("SAE_QUERY", "The Roman Empire conquered Gaul.")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": os.getcwd()}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "\n".join(str(o.get("data", {}).get("text/plain", "")) + str(o.get("text", "")) for o in outputs)
    assert "label_auroc" in text and "feature_id" in text and "before" in text
