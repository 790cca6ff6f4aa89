"""KeyBERTLabels: name and score every feature during training, every `every_n_epochs` epochs.

It lives with the labelling, not under training/: the composition root (pipeline.build_callbacks)
adds it when `labeling.every_n_epochs` asks for it, so training/ never depends on labels/.

At the end of every `every_n_epochs`-th training epoch, on rank zero only and never in the sanity
check, it runs `interpret_sae` on `pl_module.sae` over the datamodule's store and split, writes
a new labelling of the run (`<output_dir>/labelings/<id>/`, made current), logs the summary scalars
to every logger under `labels/` and,
for a WandbLogger, the W&B table "features". The final labelling is not here: it is a stage after
the SAE is exported (pipeline.finish_run), so a failure in it cannot take the weights.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pandas as pd
import pytorch_lightning as pl

from ..run_dir import RunDir
from ..run_schema import VERDICTS, headline_line, headline_scalars
from ..schemas.labeling import LabelingConfig
from .feature_table import interpret_sae, write_features

log = logging.getLogger(__name__)

# verdict next to the label: a mixed feature's keywords must never read like an interpretable one's
TABLE_COLUMNS = [
    "feature_id",
    "label",
    "concept",
    "verdict",
    "label_score",
    "coherence",
    "density",
    "main_domain",
    "domain_shares",
    "top_texts",
    "label_auroc",
    "label_auroc_hard",
    "label_precision",
    "label_recall",
    "tfidf_label",
    "tfidf_auroc",
    "tfidf_auroc_hard",
    "random_auroc",
    "random_auroc_hard",
    "seed_auroc_hard",
    "bertopic_auroc_hard",
    "judge_label_auroc_hard",
    "judge_tfidf_auroc_hard",
    "label_reason",
]


def wandb_table(df: pd.DataFrame, top_texts: int) -> pd.DataFrame:
    """The features table as W&B shows it: scalars and strings only, a few top texts per feature
    (all of them for 6144 features would make a table of tens of MB)."""
    out = df[TABLE_COLUMNS].copy()
    out["top_texts"] = [
        "\n".join(f"[{a:.2f}] {t}" for t, a in zip(texts[:top_texts], acts[:top_texts]))
        for texts, acts in zip(df["top_texts"], df["top_acts"])
    ]
    return out


class KeyBERTLabels(pl.Callback):
    def __init__(self, cfg: LabelingConfig, output_dir: str | Path | None = None, table_top_texts: int = 5) -> None:
        """cfg: the labelling's settings, with whether (`enabled`) and how often (`every_n_epochs`) to label."""
        self.output_dir = Path(output_dir) if output_dir else None
        self.table_top_texts = int(table_top_texts)
        self.cfg = cfg
        self.last_summary: dict | None = None  # kept in checkpoints: a resumed run knows its last labelling

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        every = self.cfg.every_n_epochs
        if every > 0 and (trainer.current_epoch + 1) % every == 0:
            self._label(trainer, pl_module)

    def _label(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.cfg.enabled or trainer.sanity_checking or not trainer.is_global_zero:
            return
        dm = trainer.datamodule
        if dm is None or getattr(dm, "train_idx", None) is None:
            raise ValueError(
                "KeyBERTLabels needs trainer.datamodule with .store, .train_idx and .val_idx "
                "(an EmbeddingDataModule after setup)"
            )
        df, summary = interpret_sae(pl_module.sae, dm.store, dm.train_idx, dm.val_idx, self.cfg)
        run = RunDir(self.output_dir or Path(trainer.default_root_dir))
        with run.new_labeling() as labeling:  # one labelling per epoch labelled, the newest current
            write_features(df, labeling)
            labeling.write_labels(self.cfg.to_dict(), None, summary)
        path = labeling.features
        self.last_summary = summary
        log.info(
            "labelled %d of %d features in %.1fs (%s; %s): %s",
            summary["n_labelled"],
            summary["n_features"],
            summary["time_total"],
            ", ".join(f"{summary[f'n_{v}']} {v}" for v in VERDICTS),
            headline_line(summary),
            path,
        )
        self._log(trainer, df, summary)

    def _log(self, trainer: pl.Trainer, df: pd.DataFrame, summary: dict) -> None:
        scalars = {
            f"labels/{k}": float(v)
            for k, v in (summary | headline_scalars(summary)).items()
            if isinstance(v, (int, float)) and math.isfinite(v)
        }
        for logger in trainer.loggers:
            logger.log_metrics(scalars, step=trainer.global_step)
            if type(logger).__name__ == "WandbLogger":  # no wandb import for runs that do not use it
                logger.log_table(
                    key="features", dataframe=wandb_table(df, self.table_top_texts), step=trainer.global_step
                )

    def state_dict(self) -> dict:
        # Saved in checkpoints so that a resumed run still knows its last label summary.
        return {"last_summary": json.dumps(self.last_summary) if self.last_summary else None}

    def load_state_dict(self, state_dict: dict) -> None:
        raw = state_dict.get("last_summary")
        self.last_summary = json.loads(raw) if raw else None
