"""Label a finished run (again, or for the first time): what `sae-label` and the end of `sae-train` call.

The stages after export (labels, then families when run.json asks for them) are all here, so
`sae-label run_dir=<run>` finishes a run whose labelling was interrupted, failed or never ran,
with the same result. The run is opened once (run_reader.RunReader.trained: run.json, store, SAE,
split) and scanned once (scan/stream.py); labelling, scoring and families read that scan and what the labelling
made, so no stage reloads the SAE, re-derives the split, streams the store again or re-reads
labels from disk.

Each labelling is a new folder `<run>/labelings/<id>/` (features, families named with its labels,
labels.json with its settings and summary, report.html and summary.md; RunDir.new_labeling /
commit), which becomes the run's current one only once it is whole, in one step: earlier
labellings and metrics.json are never rewritten. One labelling of a run at a time (the run's
lock, taken before the scan): a second `sae-label` is refused in one line.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from .errors import UserError
from .families.build import families_from_scan, feature_labels
from .labels.feature_table import label_features, write_features
from .labels.phase_timer import PhaseTimer
from .labels.scoring.judge import check_judge
from .run_dir import RunDir
from .run_reader import RunReader
from .scan.stream import scan_store
from .schemas.families import FamiliesConfig
from .schemas.knobs import from_node
from .schemas.labeling import LabelingConfig, labeling_problem

log = logging.getLogger(__name__)


class NoTexts(UserError):
    """The run's store holds embeddings without texts: there is nothing to name features with."""


def label_run_dir(
    run_dir: str | Path, cfg: LabelingConfig | None = None, report: bool = True
) -> tuple[pd.DataFrame, dict]:
    """A new labelling of the run, its report included (unless `report` is False), made current when
    it is whole; returns its table and summary. Without `cfg`, the default settings with the run's
    own seed (run.json), so the labelling samples as the one made at the end of training did."""
    run_dir = Path(run_dir)
    run, reader = RunDir(run_dir), RunReader(run_dir)
    info = reader.info
    cfg = cfg or LabelingConfig(seed=int(info["seed"]))
    if not info.get("has_texts", True):
        raise NoTexts(
            f"{run_dir} was trained on embeddings without texts (domain=npy without domain.metadata): "
            "there is nothing to label; its SAE and metrics are complete"
        )
    if report and run.metrics_file.is_file():  # the report shows it: a damaged one is refused before the work
        run.metrics()
    check_judge(cfg.judge_model)  # a judge that names no model: refused before the scan, as sae-train does
    problem = labeling_problem(asdict(cfg), reader.cfg.get("d_sae"))  # min_df against this run's width
    if problem:
        raise UserError(problem)
    loaded = reader.trained(cfg.device)
    families = from_node(FamiliesConfig, info["families"]) if info.get("families") else None
    timer = PhaseTimer()
    with run.new_labeling() as labeling:  # a failure or Ctrl-C removes it; the earlier one stays current
        with timer("scan"):  # one pass: what labels, scores and families need (scan/stream.py)
            m = max(cfg.m, families.texts_per_member) if families else cfg.m
            scan = scan_store(
                loaded.sae,
                loaded.store,
                loaded.train_idx,
                loaded.val_idx,
                m,
                cfg.batch_size,
                cfg.device,
                min_cooccur=families.min_cooccur if families else None,
                small_op_threads=cfg.small_op_threads,
            )
        log.info(
            "scanned %d texts for the top activations of %d features in %.0f s",
            len(loaded.train_idx),
            loaded.sae.cfg.d_sae,
            timer.summary().get("time_scan", 0.0),
        )
        started = time.perf_counter()
        result = label_features(loaded.sae, loaded.store, loaded.train_idx, loaded.val_idx, cfg, scan)
        df, summary = result.features, result.summary
        # the figure itself is printed once, by the command's closing lines (run_schema.headline_line)
        log.info("labelled and scored %d features in %.0f s", len(df), time.perf_counter() - started)
        write_features(df, labeling)
        if families:
            with timer("families"):
                labeling.write_families(
                    families_from_scan(
                        scan,
                        loaded.store,
                        loaded.sae,
                        feature_labels(df, loaded.sae.cfg.d_sae),
                        result.counts,
                        cfg,
                        families,
                    )
                )
        summary.update(timer.summary())
        summary["time_total"] = round(summary["time_total"] + summary["time_scan"], 3)
        labeling.write_labels(cfg.to_dict(), info.get("families"), summary)
        if report and run.metrics_file.is_file():  # the report is part of the labelling, before the switch
            from .report import write_report

            write_report(run_dir, labeling)
    return df, summary
