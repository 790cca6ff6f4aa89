"""interpret_sae: an SAE and its store -> the features table (labels, scores, examples) + summary.

The one entry point of labelling: the KeyBERTLabels callback, `label_run_dir` and `sae-label` call
it. Phases (each timed as `time_<phase>` in the summary):
  top_examples      streaming pass over the train rows: top-m texts, density, domain mass
  scoring_sets      streaming pass over the validation rows: positives and negatives per feature
  candidates        one CountVectorizer pass over the train texts, features' document-term rows
  doc_embeddings / word_embeddings / keybert    the batched KeyBERT labelling
  tfidf             the TF-IDF baseline labels
  label_embeddings  the three label sets embedded (cached phrases cost nothing)
  scoring           label_auroc and keyword_hit_lift for the labels and both baselines
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..embed import load_model
from ..store import EmbeddingStore
from .activation_scan import scoring_sets, top_examples
from .candidates import analyzer_params, count_train_texts, doc_term_matrix
from .domain_stats import domain_shares, domain_specificity, main_domain, shares_json
from .keybert_labeling import keybert_labels
from .label_scoring import LabelScorer
from .label_embedding import LABEL_SEPARATOR, embed_labels
from .labeling_config import LabelingConfig
from .phase_timer import PhaseTimer
from .phrase_cache import PhraseEmbeddingCache, cache_folder
from .tfidf_baseline import tfidf_top_terms

log = logging.getLogger(__name__)

# The features.parquet contract (report, notebook and W&B table read it): column -> arrow type.
FEATURE_SCHEMA = pa.schema([
    ("feature_id", pa.int64()), ("dead", pa.bool_()), ("density", pa.float64()), ("log10_density", pa.float64()),
    ("label", pa.string()), ("label_reason", pa.string()),
    ("keywords", pa.list_(pa.string())), ("keyword_scores", pa.list_(pa.float64())),
    ("top_ids", pa.list_(pa.string())), ("top_texts", pa.list_(pa.string())),
    ("top_acts", pa.list_(pa.float64())), ("top_domains", pa.list_(pa.string())),
    ("domain_shares", pa.string()), ("main_domain", pa.string()), ("domain_specificity", pa.float64()),
    ("label_auroc", pa.float64()), ("keyword_hit_lift", pa.float64()),
    ("random_label_auroc", pa.float64()), ("random_keyword_hit_lift", pa.float64()),
    ("tfidf_label", pa.string()), ("tfidf_auroc", pa.float64()), ("tfidf_keyword_hit_lift", pa.float64()),
])
FEATURE_COLUMNS = FEATURE_SCHEMA.names


def seeded_derangement(n: int, seed: int) -> np.ndarray | None:
    """A permutation with no fixed point (who gets whose label in the random baseline); None for n < 2."""
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    while True:  # about e tries on average
        perm = rng.permutation(n)
        if not (perm == np.arange(n)).any():
            return perm


def _stats(values: np.ndarray, name: str) -> dict[str, float]:
    v = values[np.isfinite(values)]
    return {f"{name}_mean": float(v.mean()) if v.size else float("nan"),
            f"{name}_median": float(np.median(v)) if v.size else float("nan")}


def interpret_sae(sae, store: EmbeddingStore, train_idx: np.ndarray, val_idx: np.ndarray,
                  cfg: LabelingConfig | None = None) -> tuple[pd.DataFrame, dict]:
    """Label every live feature of `sae` with KeyBERT and score the labels against baselines.

    train_idx rows give the top examples and labels, val_idx rows the scores (never the texts that
    produced a label). Returns the features table (FEATURE_COLUMNS, one row per feature) and the
    summary (means/medians of the scores, counts, seconds per phase)."""
    cfg = cfg or LabelingConfig()
    timer = PhaseTimer()
    with timer("total"):
        df, summary = _interpret(sae, store, np.asarray(train_idx), np.asarray(val_idx), cfg, timer)
    summary.update(timer.summary())
    return df, summary


def _interpret(sae, store, train_idx, val_idx, cfg, timer) -> tuple[pd.DataFrame, dict]:
    meta = store.metadata()
    texts, ids, domains_col = meta["text"].to_numpy(), meta["id"].astype(str).to_numpy(), meta["domain"].astype(str).to_numpy()
    d_sae = sae.cfg.d_sae
    with timer("top_examples"):
        top = top_examples(sae, store, train_idx, cfg.m, cfg.batch_size, cfg.device)
    with timer("scoring_sets"):
        sets = scoring_sets(sae, store, val_idx, cfg.m_pos, cfg.n_negatives, cfg.seed, cfg.batch_size, cfg.device)
    live = np.flatnonzero(~top.dead)

    model = load_model(store.model_name)
    cache = PhraseEmbeddingCache(
        cache_folder(store.path, store.model_name, getattr(model, "max_seq_length", None)),
        lambda phrases: model.encode(phrases, batch_size=256, convert_to_numpy=True, show_progress_bar=False))
    with timer("candidates"):
        counts = count_train_texts(texts, train_idx, cfg)
        terms = doc_term_matrix(top.rows[live], counts, cfg) if counts is not None and len(live) else None
    labels = keybert_labels(live, top.rows[live], texts, terms, store, sae, model, cache, cfg, timer)
    with timer("tfidf"):
        tfidf_kws = tfidf_top_terms(terms, counts, cfg.top_n) or [[] for _ in live]

    keywords = [[] for _ in range(d_sae)]
    kw_scores = [[] for _ in range(d_sae)]
    tfidf = [[] for _ in range(d_sae)]
    reasons = [f"dead: never fired on the {top.n_rows} train texts" for _ in range(d_sae)]
    for j, f in enumerate(live):
        keywords[f], kw_scores[f], reasons[f], tfidf[f] = labels.keywords[j], labels.scores[j], labels.reasons[j], tfidf_kws[j]
    label = [LABEL_SEPARATOR.join(k) for k in keywords]
    tfidf_label = [LABEL_SEPARATOR.join(k) for k in tfidf]

    with timer("label_embeddings"):
        label_emb = embed_labels(keywords, cache, cfg.label_embedding, store.dim)
        tfidf_emb = embed_labels(tfidf, cache, cfg.label_embedding, store.dim)

    with timer("scoring"):
        scorer = LabelScorer(store.embeddings, texts, sets.pos_rows, sets.neg_rows, analyzer_params(cfg))
        has_label = np.array([bool(s) for s in label])
        scores = {"label_auroc": scorer.auroc(label_emb, has_label), "keyword_hit_lift": scorer.lift(keywords)}
        # Random baseline: each labelled feature is scored with another labelled feature's label.
        labelled = np.flatnonzero(has_label)
        perm = seeded_derangement(len(labelled), cfg.seed)
        rand_kws: list[list[str]] = [[] for _ in range(d_sae)]
        rand_emb = np.zeros_like(label_emb)
        if perm is not None:
            donor = labelled[perm]
            rand_emb[labelled] = label_emb[donor]
            for f, g in zip(labelled, donor):
                rand_kws[f] = keywords[g]
        has_rand = np.array([bool(k) for k in rand_kws])
        scores["random_label_auroc"] = scorer.auroc(rand_emb, has_rand)
        scores["random_keyword_hit_lift"] = scorer.lift(rand_kws)
        has_tfidf = np.array([bool(s) for s in tfidf_label])
        scores["tfidf_auroc"] = scorer.auroc(tfidf_emb, has_tfidf)
        scores["tfidf_keyword_hit_lift"] = scorer.lift(tfidf)

    shares = domain_shares(top.domain_mass)
    density = top.density.astype(np.float64)
    with np.errstate(divide="ignore"):
        log10_density = np.log10(density)  # -inf for dead features, as the report expects
    valid = top.rows >= 0
    df = pd.DataFrame({
        "feature_id": np.arange(d_sae, dtype=np.int64),
        "dead": top.dead,
        "density": density,
        "log10_density": log10_density,
        "label": label,
        "label_reason": reasons,
        "keywords": keywords,
        "keyword_scores": kw_scores,
        "top_ids": [list(ids[r[v]]) for r, v in zip(top.rows, valid)],
        "top_texts": [[str(t) for t in texts[r[v]]] for r, v in zip(top.rows, valid)],
        "top_acts": [a[v].astype(np.float64).tolist() for a, v in zip(top.acts, valid)],
        "top_domains": [list(domains_col[r[v]]) for r, v in zip(top.rows, valid)],
        "domain_shares": shares_json(shares, top.domains),
        "main_domain": main_domain(shares, top.domains),
        "domain_specificity": domain_specificity(shares),
        "label_auroc": scores["label_auroc"],
        "keyword_hit_lift": scores["keyword_hit_lift"],
        "random_label_auroc": scores["random_label_auroc"],
        "random_keyword_hit_lift": scores["random_keyword_hit_lift"],
        "tfidf_label": tfidf_label,
        "tfidf_auroc": scores["tfidf_auroc"],
        "tfidf_keyword_hit_lift": scores["tfidf_keyword_hit_lift"],
    })[FEATURE_COLUMNS]

    summary: dict = {}
    for name in ("label_auroc", "keyword_hit_lift", "random_label_auroc", "random_keyword_hit_lift"):
        summary.update(_stats(scores[name], name))
    summary.update(_stats(scores["tfidf_auroc"], "tfidf_label_auroc"))
    summary.update(_stats(scores["tfidf_keyword_hit_lift"], "tfidf_keyword_hit_lift"))
    live_mask = ~top.dead
    summary.update({
        "n_features": int(d_sae),
        "n_labelled": int(has_label.sum()),
        "n_dead": int(top.dead.sum()),
        "n_no_candidates": int(sum(1 for f in live if reasons[f].startswith("no candidate"))),
        "n_scored": int(np.isfinite(scores["label_auroc"]).sum()),
        "n_phrases_embedded": int(cache.n_embedded),
    })
    if not live_mask.any():
        log.warning("every feature is dead on the %d train texts; nothing was labelled", top.n_rows)
    return df, summary


def write_features(df: pd.DataFrame, run_dir: str | Path) -> Path:
    """Write `<run_dir>/features.parquet` atomically (tmp + os.replace) with the contract's types."""
    path = Path(run_dir) / "features.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(df[FEATURE_COLUMNS], schema=FEATURE_SCHEMA, preserve_index=False)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path
