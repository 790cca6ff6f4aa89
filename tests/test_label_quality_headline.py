"""One label-quality figure, everywhere (issue 21): the console line at the end of sae-train,
labels.json, summary.md, report.html and the W&B summary lead with the same `label_quality`."""
from __future__ import annotations

import pytest

from sae_lightning.pipeline import train
from sae_lightning.run_dir import RunDir
from sae_lightning.run_schema import HEADLINE, HEADLINE_BASELINES, headline, headline_line

from .conftest import SMALL_TOPICS, compose_cfg
from .wandb_records import logged


def test_console_files_and_wandb_lead_with_the_same_label_quality(small_store, cache_dir, tmp_path, capsys):
    out = tmp_path / "run"
    topics = "[" + ",".join(f'"{t}"' for t in SMALL_TOPICS) + "]"
    train(compose_cfg(["domain=wiki_all", f"domain.topics={topics}", "domain.limit=600", "sae.d_sae=64", "sae.k=4",
                       "data.batch_size=128", "trainer.max_epochs=1", "logger=wandb", "trainer.enable_progress_bar=false"],
                      out, cache_dir))
    summary = RunDir(out).labeling().summary()
    who, values = headline(summary)
    assert who == "the embedding model" and values["label"] == pytest.approx(summary["label_auroc_hard_mean"])
    line = headline_line(summary)
    baselines = ", ".join(f"{name} {values[s]:.3f}" for s, name in HEADLINE_BASELINES.items())
    assert line.startswith(f"{HEADLINE} {values['label']:.3f} ({baselines}; ") and "random label" in baselines
    printed = capsys.readouterr().out
    assert line in printed and "label_auroc_mean" not in printed
    md = (out / "summary.md").read_text(encoding="utf-8")
    assert f"**`{HEADLINE}`**" in md and f"**{values['label']:.3f}**" in md.split("## Verdicts")[0]
    assert f"<code>{HEADLINE}</code>" in (out / "report.html").read_text(encoding="utf-8")
    (run_file,) = (out / "wandb").glob("offline-run-*/run-*.wandb")
    _, wb, _ = logged(run_file)
    assert wb[f"labels/{HEADLINE}"] == pytest.approx(values["label"])
    assert wb[f"labels/{HEADLINE}_tfidf"] == pytest.approx(values["tfidf"])
