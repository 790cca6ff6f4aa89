"""The run folder's contract (sae_lightning/run_dir.py, run_schema.py): metrics.json's sections and
units, every key documented in docs/reference/run-folder.md, runs from before labelings/ still
read (sae-train's progress output: tests/test_progress.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from sae_lightning.report import write_report
from sae_lightning.run_dir import Labeling, RunDir
from sae_lightning.run_schema import FAMILY_SCHEMA, FEATURE_COLUMNS, TRAIN_UNITS

from .html_checks import table_rows
from .test_report import METRICS, make_run

DOC = Path(__file__).resolve().parent.parent / "docs" / "reference" / "run-folder.md"


def _strict(path: Path) -> dict:
    """The file as a strict JSON reader (jq) sees it: NaN or Infinity fail."""

    def refuse(name):
        raise AssertionError(f"{path} holds {name}, which jq and strict JSON readers refuse")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_metrics_json_separates_metrics_from_timings_with_units(tiny_labelled_run):
    data = _strict(tiny_labelled_run / "metrics.json")
    assert set(data) == {"metrics", "timings_s", "units"}
    assert {"fve", "l0", "dead_frac", "epochs", "global_step"} <= set(data["metrics"])
    assert not any(k.startswith("time") for k in data["metrics"]) and "label_auroc_mean" not in data["metrics"]
    assert data["timings_s"]["fit"] > 0
    assert data["units"] == {**{k: TRAIN_UNITS[k] for k in data["metrics"]}, "timings_s.fit": "s"}
    assert all(data["units"].values()), "every metric has a unit"
    assert 0 < data["metrics"]["fve"] <= 1 and data["units"]["l0"] == "latents per input"

    labels = _strict(RunDir(tiny_labelled_run).labeling().labels_path)
    assert set(labels["units"]) == set(labels["labels"]) | {f"timings_s.{k}" for k in labels["timings_s"]}
    assert labels["units"]["n_interpretable"] == "features" and labels["units"]["tfidf_auroc_mean"] == "AUROC"


def test_every_key_and_column_is_documented(tiny_labelled_run):
    """run-folder.md names every key a finished labelled run writes (metrics.json, labels.json,
    run.json) and every column of its tables, in backticks; `<score>` patterns count."""
    doc = DOC.read_text()
    named = set(re.findall(r"`([^`]+)`", doc))
    run = RunDir(tiny_labelled_run)
    data, labels = _strict(run.metrics_file), run.labeling().info()
    keys = [
        *data["metrics"],
        *(f"timings_s.{k}" for k in data["timings_s"]),
        *labels,
        *(f"timings_s.{k}" for k in labels["timings_s"]),
        *run.run_info(),
        *FEATURE_COLUMNS,
        *FAMILY_SCHEMA.names,
    ]
    scores = {f"{s}_{k}" for s in ("label", "tfidf", "random") for k in ("auroc", "auroc_hard", "precision", "recall")}
    missing = [k for k in keys if k not in named and k.split(".")[-1] not in named]
    for key in labels["labels"]:  # itself, or `<score>_mean` / `_median` of a named score
        base = re.sub(r"_(mean|median)$", "", key)
        if key not in named and base not in named and base.removeprefix("judge_") not in scores:
            missing.append(key)
    assert missing == [], f"not in {DOC.name}: {missing}"


def test_the_top_level_files_are_the_current_labellings(tiny_labelled_run):
    run = RunDir(tiny_labelled_run)
    current = run.labeling()
    for name in Labeling.FILES:
        assert (run / name).samefile(current.folder / name) or (run / name).read_bytes() == (
            current.folder / name
        ).read_bytes(), name
    assert list(pd.read_parquet(run / "features.parquet").columns) == FEATURE_COLUMNS


def test_report_of_a_run_with_labellings_reads_the_current_one(tmp_path):
    """Training metrics from metrics.json's sections, labels from the current labelling's
    labels.json; the page goes into that labelling, mirrored at the top; an earlier labelling's
    page stays its own."""
    root = make_run(tmp_path)  # its own labelling first, then two more
    run = RunDir(root)
    train_keys = ("fve", "nmse", "cos_sim", "l0", "dead_frac", "dense_frac", "retrieval_recall@10")
    run.write_metrics({k: METRICS[k] for k in train_keys}, {"fit": 1.0})
    features, families = pd.read_parquet(root / "features.parquet"), pd.read_parquet(root / "families.parquet")
    pages = []
    for fve_shift in (0.0, 0.1):
        with run.new_labeling() as lab:
            features.to_parquet(lab.features)
            families.to_parquet(lab.families)
            summary = {k: v for k, v in METRICS.items() if k not in train_keys}
            lab.write_labels({"top_n": 3}, None, {**summary, "label_auroc_mean": 0.9012 - fve_shift, "time_total": 2.0})
        pages.append(write_report(root).read_text(encoding="utf-8"))
    (root / "labelings" / "2099-01-01_00-00-00_abcdef").mkdir()  # a stray folder (was labels.json's UserError)
    (root / "labelings" / "notes.txt").write_text("mine")
    cut = root / "labelings" / "2098-01-01_00-00-00_abcdef"  # a copy cut short in its labels.json:
    cut.mkdir()  # its line said to label the run again, which left labelings() failing on it for good
    (cut / Labeling.LABELS).write_text('{"created": "20')
    _, first, second = run.labelings()
    assert run.labeling().id == second.id and first.report.read_text(encoding="utf-8") == pages[0]
    assert (root / "report.html").read_text(encoding="utf-8") == second.report.read_text(encoding="utf-8") == pages[1]
    assert table_rows(pages[0], "label-quality-table")["KeyBERT label"][0] == "0.901"
    assert table_rows(pages[1], "label-quality-table")["KeyBERT label"][0] == "0.801"
    assert "0.8123" in pages[1] and "time_total" not in pages[1]  # training metrics shown, timings not
