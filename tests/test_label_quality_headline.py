"""One label-quality figure, everywhere: the console line at the end of sae-train,
labels.json, summary.md, report.html and the W&B summary lead with the same `label_quality`."""

from __future__ import annotations

import pytest

from sae_lightning.run_dir import RunDir
from sae_lightning.run_schema import (
    HEADLINE,
    HEADLINE_BASELINES,
    headline,
    headline_line,
)

from .conftest import printed_by
from .wandb_records import logged


def test_console_files_and_wandb_lead_with_the_same_label_quality(tiny_labelled_run):
    """On the shared run (trained with logger=wandb; what it printed kept by the fixture)."""
    out = tiny_labelled_run
    summary = RunDir(out).labeling().summary()
    who, values = headline(summary)
    assert who == "the embedding model" and values["label"] == pytest.approx(summary["label_auroc_hard_mean"])
    line = headline_line(summary)
    baselines = ", ".join(f"{name} {values[s]:.3f}" for s, name in HEADLINE_BASELINES.items())
    assert line.startswith(f"{HEADLINE} {values['label']:.3f} ({baselines}; ") and "random label" in baselines
    printed = printed_by(out)
    assert line in printed and "label_auroc_mean" not in printed
    md = (out / "summary.md").read_text(encoding="utf-8")
    assert f"**`{HEADLINE}`**" in md and f"**{values['label']:.3f}**" in md.split("## Verdicts")[0]
    assert f"<code>{HEADLINE}</code>" in (out / "report.html").read_text(encoding="utf-8")
    (run_file,) = (out / "wandb").glob("offline-run-*/run-*.wandb")
    _, wb, _ = logged(run_file)
    assert wb[f"labels/{HEADLINE}"] == pytest.approx(values["label"])
    assert wb[f"labels/{HEADLINE}_tfidf"] == pytest.approx(values["tfidf"])
