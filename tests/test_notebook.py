"""The exploration notebook runs top to bottom on a tiny real run, as a user runs it: `jupyter
execute` from the notebooks/ folder (a real kernel), the run passed through SAE_RUN_DIR."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "explore_run.ipynb"


def test_default_run_writes_labels_families_and_report(tiny_labelled_run):
    import pandas as pd

    for name in ("features.parquet", "families.parquet", "report.html", "summary.md", "metrics.json"):
        assert (tiny_labelled_run / name).is_file(), name
    families = pd.read_parquet(tiny_labelled_run / "families.parquet")
    assert set(families.columns) >= {"family_id", "parent", "children", "label"}
    assert 'id="families"' in (tiny_labelled_run / "report.html").read_text()


@pytest.mark.slow
def test_notebook_executes_with_jupyter_execute_from_the_notebooks_folder(tiny_labelled_run, tmp_path):
    env = {**os.environ, "SAE_RUN_DIR": str(tiny_labelled_run), "SAE_QUERY": "The Roman Empire conquered Gaul."}
    res = subprocess.run(
        [sys.executable, "-m", "jupyter", "execute", NOTEBOOK.name, f"--output={tmp_path / 'executed'}"],
        cwd=NOTEBOOK.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    nb = nbformat.read(tmp_path / "executed.ipynb", as_version=4)
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "\n".join(str(o.get("data", {}).get("text/plain", "")) + str(o.get("text", "")) for o in outputs)
    assert str(tiny_labelled_run) in text  # the run it found
    assert "label_auroc" in text and "feature_id" in text and "before" in text and "features fire on the query" in text
    assert not (NOTEBOOK.parent / "outputs").exists()  # it read the run, wrote nothing beside the notebook
