"""What the files of a run hold: the parquet schemas and the keys of metrics.json and labels.json,
each with its unit. RunDir (run_dir.py) writes and reads the files; this module says what is in
them, so the columns and keys are spelled once (docs/reference/run-folder.md lists the same, and
tests/test_run_dir.py checks that every key here is documented there)."""

from __future__ import annotations

import math

import pyarrow as pa

# The SAE folder's files (SAELens' names, so `sae_lens.SAE.load_from_disk` opens it): written by
# models/saelens_files.py, found in a run under sae/ (RunDir.SAE_CFG, ...).
SAE_CFG_FILE, SAE_WEIGHTS_FILE, SPARSITY_FILE = "cfg.json", "sae_weights.safetensors", "sparsity.safetensors"
# cfg.json's block of our complete SAEConfig (architecture under our name, the variant's fields),
# beside SAELens' own keys, which SAELens reads and this block it ignores.
OWN_CONFIG_KEY = "sae_lightning"

METHOD_BASELINES = ("seed", "bertopic")  # KeyBERT per top text merged (the seed project's), BERTopic's KeyBERTInspired
# the labels, the TF-IDF baseline, a random other feature's label, and the two method baselines
LABEL_SETS = ("label", "tfidf", "random", *METHOD_BASELINES)
SCORES = ("auroc", "auroc_hard", "precision", "recall")
# The values of features.parquet's `verdict` column, most trusted first (labels/scoring/verdict.py
# says what each means); every reader imports them from here.
INTERPRETABLE, MIXED, TOKEN, WEAK, DEAD = VERDICTS = ("interpretable", "mixed", "token", "weak", "dead")
# A feature that is not interpretable has a label that says so first ("mixed: measles, pregnancy",
# 'token: "cr…"'): a bare keyword list reads as a name, and blind readers took it for one
# (docs/interpretation/reading.md).
VERDICT_MARK = ": "


def verdict_marked(verdict: str, text: str) -> str:
    """The label of a feature that is not interpretable: its verdict, then what it responds to."""
    return f"{verdict}{VERDICT_MARK}{text}"


def verdict_note(label: str, verdict: str) -> str:
    """What a listing prints after a label to give its verdict: " (token)" where the label does not
    say it ('numbers: 1924, 1937' of a token feature), nothing where it does ("mixed: …") or where
    there is nothing to warn of (interpretable, or no verdict)."""
    if not verdict or verdict == INTERPRETABLE or label.startswith(f"{verdict}{VERDICT_MARK}"):
        return ""
    return f" ({verdict})"


# One scheme everywhere: column `<set>_<score>`, its summary `<set>_<score>_mean` / `_median`.
SCORE_COLUMNS = [f"{s}_{kind}" for s in LABEL_SETS for kind in SCORES]
JUDGE_COLUMNS = [f"judge_{s}_{kind}" for s in LABEL_SETS for kind in ("auroc", "auroc_hard")]
# What says how far to trust a feature's label, shown beside it (the API's top_features and Feature.scores).
TRUST_COLUMNS = ("verdict", "label_score", "label_auroc", "label_auroc_hard", "coherence")

# features.parquet, one row per feature: column -> arrow type.
FEATURE_SCHEMA = pa.schema(
    [
        ("feature_id", pa.int64()),
        ("dead", pa.bool_()),
        ("density", pa.float64()),
        ("log10_density", pa.float64()),
        ("label", pa.string()),
        ("concept", pa.string()),
        ("label_reason", pa.string()),
        ("keywords", pa.list_(pa.string())),
        ("keyword_scores", pa.list_(pa.float64())),
        ("top_ids", pa.list_(pa.string())),
        ("top_texts", pa.list_(pa.string())),
        ("top_acts", pa.list_(pa.float64())),
        ("top_domains", pa.list_(pa.string())),
        ("domain_shares", pa.string()),
        ("main_domain", pa.string()),
        ("domain_specificity", pa.float64()),
        ("tfidf_label", pa.string()),
        *[(f"{b}_label", pa.string()) for b in METHOD_BASELINES],
        ("coherence", pa.float64()),
        ("verdict", pa.string()),
        *[(c, pa.float64()) for c in SCORE_COLUMNS + JUDGE_COLUMNS],
        ("label_score", pa.float64()),
    ]
)
FEATURE_COLUMNS = FEATURE_SCHEMA.names

# families.parquet, one row per family.
FAMILY_SCHEMA = pa.schema(
    [
        ("family_id", pa.int64()),
        ("parent", pa.int64()),
        ("children", pa.list_(pa.int64())),
        ("label", pa.string()),
        ("keywords", pa.list_(pa.string())),
        ("size", pa.int64()),
        ("child_weights", pa.list_(pa.float64())),
        ("mean_weight", pa.float64()),
        ("parent_density", pa.float64()),
        ("parent_label", pa.string()),
    ]
)

# metrics.json's dense_frac: the share of latents firing on more than this share of inputs (a
# dense feature fires on too much to be named); the training log and the report use the same.
DENSE_THRESHOLD = 0.1

# metrics.json "metrics": key -> unit. Reconstruction on the validation split, dictionary health
# from the training densities, and how far training went.
TRAIN_UNITS = {
    "fve": "fraction",
    "nmse": "fraction",
    "mse": "squared embedding units",
    "cos_sim": "cosine",
    "l0": "latents per input",
    "never_fired_frac": "fraction",
    "retrieval_recall@10": "fraction",
    "dead_frac": "fraction",
    "dense_frac": "fraction",
    "mean_log10_density": "log10 fraction",
    "epochs": "epochs",
    "global_step": "optimizer steps",
}
# labels.json "labels": `<score>_mean` / `_median` are AUROC (0.5 chance), precision or recall
# fractions, coherence in cosine above the random-pair baseline; counts are features.
LABEL_COUNTS = (
    "n_features",
    "n_labelled",
    "n_scored",
    *(f"n_{v}" for v in VERDICTS),
    "n_phrases_embedded",
    "n_judge_embedded",
)


# The one label-quality figure: every reader leads with it under this name (the console line at the
# end of sae-train and sae-label, summary.md, report.html, W&B's `labels/label_quality`, the docs).
# It is the labels' mean AUROC against hard negatives (the non-firing texts nearest the feature's):
# against random negatives any on-topic word scores high (0.85 on the default run, TF-IDF 0.81), so
# only hard negatives tell a label that names the feature from one that names its neighbourhood.
# Graded by the independent judge when the run has one (a label graded by the model that made it is
# graded by its author), else by the store's model; its baselines are the same figure for the
# TF-IDF top terms and for a random other feature's label.
HEADLINE = "label_quality"
HEADLINE_MEANING = "mean AUROC of the labels against hard negatives, 0.5 chance"
HEADLINE_BASELINES = {"tfidf": "TF-IDF", "seed": "seed method", "bertopic": "KeyBERTInspired", "random": "random label"}


def headline_key(source: str = "label", judged: bool = False) -> str:
    """The labels.json key the figure is read from, for one label set."""
    return f"{'judge_' if judged else ''}{source}_auroc_hard_mean"


def headline(summary: dict) -> tuple[str, dict[str, float | None]]:
    """(who graded, label set -> the figure) from a labels summary; None where not measured."""
    judged = bool(summary.get("judge_model"))

    def value(source: str) -> float | None:
        v = summary.get(headline_key(source, judged))
        return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None

    return (f"the judge {summary['judge_model']}" if judged else "the embedding model"), {
        s: value(s) for s in LABEL_SETS
    }


def headline_line(summary: dict) -> str:
    """`label_quality 0.567 (TF-IDF 0.544, random label 0.437; mean AUROC ... , by the embedding model)`."""
    who, values = headline(summary)

    def fmt(v):
        return "n/a" if v is None else f"{v:.3f}"

    base = ", ".join(f"{name} {fmt(values[s])}" for s, name in HEADLINE_BASELINES.items())
    return f"{HEADLINE} {fmt(values['label'])} ({base}; {HEADLINE_MEANING}, by {who})"


def headline_scalars(summary: dict) -> dict[str, float]:
    """The figure and its baselines as logger scalars: label_quality, label_quality_tfidf, ..."""
    _, values = headline(summary)
    return {HEADLINE if s == "label" else f"{HEADLINE}_{s}": v for s, v in values.items() if v is not None}


def label_unit(key: str) -> str:
    """The unit of a key of labels.json's "labels" section."""
    if key in LABEL_COUNTS:
        return "phrases" if key == "n_phrases_embedded" else "texts" if key == "n_judge_embedded" else "features"
    if key == "judge_model":
        return "model name"
    if "auroc" in key:
        return "AUROC"
    if key.startswith("coherence") or key.startswith("label_score"):
        return "cosine" if key.startswith("coherence") else "AUROC x fraction"
    return "fraction"  # precision, recall


def split_label_summary(summary: dict) -> tuple[dict, dict]:
    """interpret_sae's summary -> (labels, timings_s): its `time_<phase>` keys are the timings."""
    labels = {k: v for k, v in summary.items() if not k.startswith("time_")}
    timings = {k[len("time_") :]: v for k, v in summary.items() if k.startswith("time_")}
    return labels, timings


def clean(obj):
    """NaN/Inf -> None, recursively (strict JSON readers and jq choke on NaN)."""
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    return None if isinstance(obj, float) and not math.isfinite(obj) else obj


def metrics_file(metrics: dict, timings_s: dict) -> dict:
    """metrics.json's contents: {"metrics", "timings_s", "units"}."""
    units = {k: TRAIN_UNITS.get(k, "") for k in metrics} | {f"timings_s.{k}": "s" for k in timings_s}
    return clean({"metrics": metrics, "timings_s": timings_s, "units": units})


def labels_file(labeling_id: str, created: str, settings: dict, families: dict | None, summary: dict) -> dict:
    """labels.json's contents: which labelling, its settings, its summary and its timings."""
    labels, timings = split_label_summary(summary)
    units = {k: label_unit(k) for k in labels} | {f"timings_s.{k}": "s" for k in timings}
    return clean(
        {
            "id": labeling_id,
            "created": created,
            "settings": settings,
            "families": families,
            "labels": labels,
            "timings_s": timings,
            "units": units,
        }
    )
