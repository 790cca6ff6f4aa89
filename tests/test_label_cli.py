"""sae-label: relabel a finished run with other settings, without retraining; refuse non-runs."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

SAE_LABEL = str(Path(sys.executable).parent / "sae-label")


@pytest.mark.slow
def test_relabel_a_finished_run_with_other_settings(tiny_labelled_run, tmp_path, cache_dir):
    run = tmp_path / "run"
    shutil.copytree(tiny_labelled_run, run)
    trained = json.loads((run / "metrics.json").read_text())["fve"]
    res = subprocess.run([SAE_LABEL, f"run_dir={run}", "labeling.top_n=5", "labeling.doc_embedding=mean",
                          f"paths.log_dir={tmp_path / 'logs'}"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    features = pd.read_parquet(run / "features.parquet")
    live = features[~features["dead"] & (features["label"] != "")]
    assert len(live) and live["keywords"].map(len).max() == 5
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["fve"] == trained and "label_auroc_mean" in metrics  # training metrics kept
    assert "report:" in res.stdout


def test_not_a_run_is_one_line_and_creates_nothing(tmp_path):
    target = tmp_path / "nowhere"
    res = subprocess.run([SAE_LABEL, f"run_dir={target}", f"paths.log_dir={tmp_path / 'logs'}"],
                         capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith(f"error: {target} is not a run dir")
    assert not target.exists()
