"""interpret_sae: an SAE and its store -> the features table (labels, scores, examples) + summary.

The one entry point of labelling: the KeyBERTLabels callback, `label_run_dir` and `sae-label` call
it. Phases (each timed as `time_<phase>` in the summary):
  scan              the one streamed pass over train and validation rows (scan/stream.py): top-m texts,
                    density, domain mass, validation firings (absent when the caller passes a scan)
  scoring_sets      positives, random and hard negatives from the scan's validation firings
  coherence         how alike each feature's top texts from distinct documents are (coherence.py)
  tokens            which of them share only a surface pattern of the tokenizer (token_features.py)
                    or one whole word in unrelated senses (word_features.py)
  candidates        one CountVectorizer pass over the train texts, features' document-term rows
  tfidf             the candidates' TF-IDF: the baseline labels and the rerank's evidence
  doc_embeddings / word_embeddings / keybert / rerank    the batched KeyBERT labelling
  baselines         the seed project's method and BERTopic's KeyBERTInspired (label_sets.py)
  concepts          each label's head term against train-side hard negatives (concept.py)
  label_embeddings  the label sets embedded (cached phrases cost nothing)
  scoring           AUROCs and keyword precision/recall of the labels and both baselines
  judge             the same AUROCs by `labeling.judge_model` (only when set)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.store import EmbeddingStore
from ..run_dir import Labeling
from ..run_schema import (
    FEATURE_COLUMNS,
    INTERPRETABLE,
    JUDGE_COLUMNS,
    LABEL_SETS,
    METHOD_BASELINES,  # noqa: F401
    MIXED,
    SCORE_COLUMNS,
    TOKEN,
    VERDICTS,
    verdict_marked,
)
from ..runtime import limited_threads
from ..scan.domains import domain_shares, domain_specificity, main_domain, shares_json
from ..scan.stream import ScanResult, scan_store
from ..schemas.labeling import LabelingConfig
from .naming.candidates import TrainCounts, analyzer_params, doc_term_matrix
from .naming.concept import FIT_TEXTS, concept_support, support_floor, without_concept
from .naming.counts_cache import cached_train_counts
from .naming.keybert import keybert_labels
from .naming.label_embedding import LABEL_SEPARATOR, embed_labels, label_text
from .naming.label_sets import baseline_labels, concept_labels, used_candidates
from .naming.phrase_cache import model_and_cache
from .naming.phrases import stop_set
from .naming.source_documents import document_codes
from .naming.tfidf_baseline import tfidf_scores, tfidf_top_terms
from .phase_timer import PhaseTimer
from .scoring.auroc import LabelScorer, auroc_columns, keyword_columns, random_labels, scored_rows
from .scoring.coherence import feature_coherence
from .scoring.judge import judge_columns, load_judge
from .scoring.scoring_sets import sets_from_firing
from .scoring.token_features import token_features
from .scoring.verdict import label_scores, named_verdicts, verdicts
from .scoring.word_features import word_features

log = logging.getLogger(__name__)


def _stats(values: np.ndarray, name: str) -> dict[str, float]:
    v = values[np.isfinite(values)]
    return {
        f"{name}_mean": float(v.mean()) if v.size else float("nan"),
        f"{name}_median": float(np.median(v)) if v.size else float("nan"),
    }


@dataclass
class LabelResult:
    """What one labelling computed (a Labeling, labeling.py, is the folder it is written to)."""

    features: pd.DataFrame  # FEATURE_COLUMNS, one row per feature
    summary: dict  # score means/medians, counts, seconds per phase
    counts: TrainCounts | None  # n-gram counts of the scan's top texts (families are named from them)


def interpret_sae(
    sae,
    store: EmbeddingStore,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    cfg: LabelingConfig | None = None,
    scan: ScanResult | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Label every live feature of `sae` with KeyBERT and score the labels against baselines.

    train_idx rows give the top examples and labels, val_idx rows the scores (never the texts that
    produced a label). `scan`: the scan of these rows if the caller has it (scan/stream.py; its top
    examples may keep more than cfg.m per feature), else it is made here. Returns the features
    table (FEATURE_COLUMNS, one row per feature) and the summary (means/medians of the scores,
    counts, seconds per phase)."""
    got = label_features(sae, store, train_idx, val_idx, cfg, scan)
    return got.features, got.summary


def label_features(
    sae,
    store: EmbeddingStore,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    cfg: LabelingConfig | None = None,
    scan: ScanResult | None = None,
) -> LabelResult:
    """interpret_sae, also handing back what the families step reuses."""
    cfg = cfg or LabelingConfig()
    timer = PhaseTimer()
    with timer("total"):
        if cfg.judge_model is not None:  # a judge that cannot load is refused before the work, not after
            load_judge(cfg.judge_model)
        if scan is None:
            with timer("scan"):
                scan = scan_store(
                    sae,
                    store,
                    train_idx,
                    val_idx,
                    cfg.m,
                    cfg.batch_size,
                    cfg.device,
                    min_cooccur=None,
                    small_op_threads=cfg.small_op_threads,
                )
        df, summary, counts = _interpret(sae, store, np.asarray(train_idx), scan, cfg, timer)
    summary.update(timer.summary())
    return LabelResult(df, summary, counts)


def _interpret(sae, store, train_idx, scan: ScanResult, cfg, timer) -> tuple[pd.DataFrame, dict, TrainCounts | None]:
    meta = store.metadata()
    texts = meta["text"].to_numpy()
    codes = document_codes(meta["id"].to_numpy())
    top = scan.top.first(cfg.m)
    with timer("scoring_sets"):
        sets = sets_from_firing(scan.val_firing, scan.val_rows, store, cfg.m_pos, cfg.n_negatives, cfg.n_hard, cfg.seed)
    with timer("coherence"):
        coherence = feature_coherence(
            top.rows, store.embeddings, train_idx, codes, cfg.coherence_min_docs, cfg.coherence_pairs, cfg.seed
        )
    live = np.flatnonzero(~top.dead)

    model, cache = model_and_cache(store)

    def whole_words(tested: np.ndarray):
        """word_features on the `tested` features [d_sae] (bool); the token ones marked in `tokens`."""
        found = word_features(
            coherence.doc_rows,
            coherence.n_docs,
            tested,
            texts,
            store.embeddings,
            train_idx,
            cache,
            stop_set(cfg.stop_words),
            coherence.baseline_mean,
            coherence.baseline_std,
            cfg.token_share_gap,
            cfg.seed,
            model.tokenizer,
        )
        for f in np.flatnonzero(found.is_token):
            tokens.is_token[f], tokens.labels[f], tokens.reasons[f] = True, found.labels[f], found.reasons[f]
            tokens.coherence[f] = found.coherence[f]
        return found

    with timer("tokens"):
        tokens = token_features(
            coherence.doc_rows,
            coherence.n_docs,
            coherence.score,
            texts,
            store.embeddings,
            train_idx,
            model.tokenizer,
            cache,
            coherence.baseline_mean,
            coherence.baseline_std,
            cfg.coherence_min,
            cfg.token_share_gap,
            cfg.seed,
        )
        # one whole word in unrelated senses ("brown": colour, bears, surname), among the features
        # that would otherwise be interpretable
        maybe = (
            (tokens.coherence >= cfg.coherence_min) & ~tokens.is_token & (coherence.n_docs >= cfg.coherence_min_docs)
        )
        words = whole_words(maybe)
    with timer("candidates"):
        # only the texts some feature's labelling (or family name) reads: the scan's top rows
        counts = cached_train_counts(store, texts, train_idx, cfg, np.unique(scan.top.rows[scan.top.rows >= 0]))
        terms = (
            doc_term_matrix(
                top.rows[live],
                counts,
                cfg,
                codes if cfg.distinct_documents else None,
                top.acts[live] if cfg.activation_weights else None,
            )
            if counts is not None and len(live)
            else None
        )
    with timer("tfidf"):
        tfidf = tfidf_scores(terms, counts) if terms is not None else None
        found_tfidf = tfidf_top_terms(tfidf, terms.words if terms else None, cfg.top_n) or [[] for _ in live]
    found = keybert_labels(live, top.rows[live], texts, terms, tfidf, store, sae, model, cache, cfg, timer)
    d_sae = sae.cfg.d_sae
    has_label = np.zeros(d_sae, dtype=bool)
    has_label[live] = [bool(k) for k in found.keywords]
    has_label |= tokens.is_token & np.array([bool(t) for t in tokens.labels])
    verdict = verdicts(top.dead, tokens.coherence, has_label, cfg.coherence_min, tokens.is_token)
    # A head term claims that the texts share one concept: only an interpretable feature's do.
    # Named on a mixed feature it was the misleading part of the label (7 of 7 misleading labels of
    # a blind reading, docs/interpretation/reading.md), so only interpretable features keep one; a
    # feature mixed by its coherence alone becomes interpretable where its name fits every text a
    # reader sees but one (verdict.named_verdicts).
    named = np.flatnonzero(np.isin(verdict[live], (INTERPRETABLE, MIXED)))  # positions in `live`
    made = {"concept": [""] * len(live), "seed": [[] for _ in live], "bertopic": [[] for _ in live]}
    unnamed: dict[int, str] = {}  # position in `live` -> why an interpretable-looking feature is mixed
    if terms is not None and terms.matrix.nnz:  # some feature has a candidate to choose from
        cands = used_candidates(terms, cache)
        with timer("baselines"):
            made.update(baseline_labels(top.rows[live], terms, counts, cands, store, cfg.top_n))
        if len(named):
            was = verdict[live[named]]
            with timer("concepts"):
                # a mixed feature is named from (and its name must fit) its FIT_TEXTS most activating
                # texts: its later top texts, less alike, would pull the name off them
                rows = top.rows[live][named].copy()
                rows[was == MIXED, FIT_TEXTS:] = -1
                concepts, fit = concept_labels(sae, store, train_idx, live[named], rows, codes, cands, cfg)
            support = concept_support(fit)
            now = named_verdicts(was, support, support_floor(fit), cfg.concept_support_min)
            verdict[live[named]] = now
            for j, concept, fits, before, after in zip(named, concepts, support, was, now):
                if after == INTERPRETABLE:
                    made["concept"][j] = concept
                elif before == INTERPRETABLE:  # no name fits its texts (concept.py, "Support")
                    unnamed[j] = (
                        f'no name fits its top texts: the nearest, "{concept}", is {fits:.1f} spreads above '
                        f"random texts in cosine with them (a name needs {cfg.concept_support_min:g})"
                    )
            # a name fits all of a mixed feature's texts where they share one word in unrelated senses
            # ("seal": the animal, a wax seal): such a feature is a token one
            named_now = np.zeros(d_sae, dtype=bool)
            named_now[live[named][(was == MIXED) & (now == INTERPRETABLE)]] = True
            if named_now.any():
                with timer("tokens"):
                    more = whole_words(named_now)
                words.coherence = np.where(named_now, more.coherence, words.coherence)
                for f in np.flatnonzero(more.is_token):
                    verdict[f], made["concept"][np.searchsorted(live, f)] = TOKEN, ""
    token_label = [label if is_token else "" for label, is_token in zip(tokens.labels, tokens.is_token)]

    lists = ("keywords", "keyword_scores", "named", "tfidf", *METHOD_BASELINES)
    labels = {name: [[] for _ in range(d_sae)] for name in lists}
    labels.update(
        {
            "concept": [""] * d_sae,
            "token": token_label,
            "label_reason": [f"dead: never fired on the {top.n_rows} train texts"] * d_sae,
        }
    )
    for j, f in enumerate(live):
        concept = made["concept"][j]  # "" unless interpretable
        kws = without_concept(found.keywords[j], concept) if found.keywords[j] else []
        keep = [found.keywords[j].index(k) for k in kws]
        labels["keywords"][f], labels["keyword_scores"][f] = kws, [found.scores[j][i] for i in keep]
        labels["concept"][f] = concept if kws else ""
        labels["named"][f] = ([concept] if labels["concept"][f] else []) + kws  # the label as shown: scored whole
        labels["label_reason"][f], labels["tfidf"][f] = unnamed.get(j, found.reasons[j]), found_tfidf[j]
        labels["seed"][f], labels["bertopic"][f] = made["seed"][j], made["bertopic"][j]
        if labels["token"][f]:  # a token feature's label says which pattern; its keywords stay as evidence
            labels["label_reason"][f] = tokens.reasons[f]
    rand_kws, donor = random_labels(labels["named"], cfg.seed)

    with timer("label_embeddings"):
        shown = {name: labels["named" if name == "label" else name] for name in LABEL_SETS if name != "random"}
        embedded = {
            name: (kws, embed_labels(kws, cache, cfg.label_embedding, store.dim)) for name, kws in shown.items()
        }
        embedded["random"] = (rand_kws, np.where((donor >= 0)[:, None], embedded["label"][1][np.maximum(donor, 0)], 0))
    kw_sets = {name: kws for name, (kws, _) in embedded.items()}  # the label as shown: its head term counts
    with timer("scoring"), limited_threads(cfg.small_op_threads):
        rows = scored_rows(sets)
        scorer = LabelScorer(sets, rows, np.asarray(store.embeddings[rows], dtype=np.float32))
        scores = auroc_columns(scorer, embedded)
        scores.update(keyword_columns(kw_sets, texts[sets.val_rows], sets, analyzer_params(cfg)))
    with timer("judge"):
        judge = judge_columns(
            cfg.judge_model,
            store,
            texts,
            sets,
            kw_sets,
            cfg.label_embedding,
            d_sae,
        )
        scores.update(judge.columns)

    scores["coherence"] = tokens.coherence  # masked where a surface pattern was found
    scores["verdict"] = verdict
    # ranked on how alike the texts are beyond any one shared word: texts alike mostly through "giant"
    # or "Irving" (coherence without it 1.1-1.75, still interpretable) rank below texts alike without it
    scores["label_score"] = label_scores(
        scores["label_auroc_hard"], tokens.coherence, cfg.score_coherence, words.coherence
    )
    if not len(live):
        log.warning("every feature is dead on the %d train texts; nothing was labelled", top.n_rows)
    summary = _summary(scores, labels, top, cfg)
    summary.update(
        {
            "coherence_baseline_mean": coherence.baseline_mean,
            "coherence_baseline_std": coherence.baseline_std,
            # phrases and masked texts: 0 on a relabel, what the caches save
            "n_phrases_embedded": int(cache.n_embedded),
            "n_judge_embedded": judge.n_embedded,
        }
    )
    return _table(top, labels, scores, meta), summary, counts


def shown_label(concept: str, keywords: list[str], token: str, verdict: str) -> str:
    """The label column: a token feature's pattern; "concept — keywords" for an interpretable one;
    the keywords behind the verdict for the rest ("mixed: measles, pregnancy"), whose texts share
    no one meaning, so their keywords must not read as its name."""
    if token:
        return token
    text = label_text(concept, keywords)
    return text if verdict == INTERPRETABLE or not text else verdict_marked(verdict, text)


def _table(top, labels: dict, scores: dict, meta: pd.DataFrame) -> pd.DataFrame:
    texts, ids, domains = (meta[c].astype(str).to_numpy() for c in ("text", "id", "domain"))
    shares = domain_shares(top.domain_mass)
    density = top.density.astype(np.float64)
    with np.errstate(divide="ignore"):
        log10_density = np.log10(density)  # -inf for dead features, as the report expects
    valid = top.rows >= 0
    return pd.DataFrame(
        {
            "feature_id": np.arange(len(density), dtype=np.int64),
            "dead": top.dead,
            "density": density,
            "log10_density": log10_density,
            "label": [
                shown_label(c, k, t, v)
                for c, k, t, v in zip(labels["concept"], labels["keywords"], labels["token"], scores["verdict"])
            ],
            "concept": labels["concept"],
            "label_reason": labels["label_reason"],
            "keywords": labels["keywords"],
            "keyword_scores": labels["keyword_scores"],
            "top_ids": [list(ids[r[v]]) for r, v in zip(top.rows, valid)],
            "top_texts": [list(texts[r[v]]) for r, v in zip(top.rows, valid)],
            "top_acts": [a[v].astype(np.float64).tolist() for a, v in zip(top.acts, valid)],
            "top_domains": [list(domains[r[v]]) for r, v in zip(top.rows, valid)],
            "domain_shares": shares_json(shares, top.domains),
            "main_domain": main_domain(shares, top.domains),
            "domain_specificity": domain_specificity(shares),
            "tfidf_label": [LABEL_SEPARATOR.join(k) for k in labels["tfidf"]],
            **{f"{name}_label": [LABEL_SEPARATOR.join(k) for k in labels[name]] for name in METHOD_BASELINES},
            "coherence": scores["coherence"].astype(np.float64),
            "verdict": scores["verdict"].astype(str),
            **{c: np.asarray(scores[c], dtype=np.float64) for c in SCORE_COLUMNS + JUDGE_COLUMNS},
            "label_score": np.asarray(scores["label_score"], dtype=np.float64),
        }
    )[FEATURE_COLUMNS]


def _summary(scores: dict, labels: dict, top, cfg: LabelingConfig) -> dict:
    """Mean/median of each score over the features it exists for (NaN = not scored), counts per
    verdict, and which judge (if any) made the judge_* numbers."""
    summary: dict = {}
    for column in ("coherence", *SCORE_COLUMNS, *JUDGE_COLUMNS, "label_score"):
        summary.update(_stats(np.asarray(scores[column], dtype=np.float64), column))
    verdict = scores["verdict"]
    summary.update({f"n_{v}": int((verdict == v).sum()) for v in VERDICTS})
    summary.update(
        {
            "n_features": int(len(top.dead)),
            "n_labelled": int(sum(1 for k in labels["keywords"] if k)),
            "n_scored": int(np.isfinite(scores["label_auroc"]).sum()),
            "judge_model": cfg.judge_model or "",
        }
    )
    return summary


def write_features(df: pd.DataFrame, folder: str | Path | Labeling) -> Path:
    """Write the features table into a labelling's folder (or any folder) with the contract's types."""
    return (folder if isinstance(folder, Labeling) else Labeling(folder)).write_features(df)
