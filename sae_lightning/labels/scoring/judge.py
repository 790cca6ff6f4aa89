"""An independent judge: the labels scored by a second sentence-transformers model.

A label made with the store's model and graded by that same model is graded by its author.
With `labeling.judge_model` set (a path, or a name `embed.load_model` resolves), the judge embeds
the labels (as the store's model does, `labeling.label_embedding`) and the scoring texts itself,
and the same AUROCs are computed (`judge_<set>_auroc`, `judge_<set>_auroc_hard`).

What it embeds, once each: the distinct texts of the union of every feature's positives, random
and hard negatives (at most the validation split: 3,256 texts on the default run, against 824k
per-feature slots), and the distinct keywords (or label strings) of the three label sets. Both go
through one content-keyed cache beside the store (phrase_cache.py, atomic writes) under the key of
the model the name resolves to, so `all-mpnet-base-v2` and its folder's path share one cache and a
relabel with the same judge embeds nothing and reproduces the scores bit for bit.
`n_judge_embedded` in the summary says what a run had to embed. A model folder overwritten in
place keeps its old cache: delete <store>/keybert/ then."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ...data.embed import resolve_model
from ..naming.label_embedding import embed_labels
from ..naming.phrase_cache import load_named_model, model_and_cache
from .auroc import LabelScorer, auroc_columns, scored_rows
from .scoring_sets import ScoringSets

log = logging.getLogger(__name__)
JUDGE_SETTING = "labeling.judge_model"


@dataclass
class JudgeScores:
    columns: dict[str, np.ndarray]  # judge_<set>_auroc(_hard), NaN when no judge is configured
    n_embedded: int  # texts and phrases the judge model had to embed (0 on a warm cache)


def judge_column_names(label_sets) -> list[str]:
    return [f"judge_{name}_{kind}" for name in label_sets for kind in ("auroc", "auroc_hard")]


def _dimension(model) -> int:
    # sentence-transformers renamed the method; the installed version may have either name
    get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(get())


def check_judge(judge_model: str | None) -> None:
    """Refuse a judge that names no model before the work it would grade (a training of hours): the
    name is resolved, which checks a folder's files (the packaged mpnet is assembled), and loading
    waits for the labelling."""
    if judge_model is not None:
        resolve_model(judge_model, JUDGE_SETTING)


def load_judge(judge_model: str):
    """The judge model, loaded once per process: the labelling calls this before its work, so a
    model that cannot be loaded is one line naming labeling.judge_model, not a failure at the end."""
    return load_named_model(judge_model, JUDGE_SETTING)


def judge_columns(
    judge_model: str | None,
    store,
    texts: np.ndarray,
    sets: ScoringSets,
    label_sets: dict[str, list[list[str]]],
    label_embedding: str,
    n_features: int,
) -> JudgeScores:
    """The judge's AUROCs of each label set on the same scoring sets as the store's model."""
    if judge_model is None:
        return JudgeScores({name: np.full(n_features, np.nan) for name in judge_column_names(label_sets)}, 0)
    model, cache = model_and_cache(store, judge_model, setting=JUDGE_SETTING)
    rows = scored_rows(sets)
    row_texts = [str(t) for t in texts[rows]]
    row_emb = cache.get(row_texts) if len(rows) else np.zeros((0, 1), np.float32)
    n_texts = cache.n_embedded
    dim = _dimension(model)
    embedded = {name: (kws, embed_labels(kws, cache, label_embedding, dim)) for name, kws in label_sets.items()}
    log.info(
        "judge %s: %d distinct scoring texts (%d embedded now), label phrases: %d embedded now",
        judge_model,
        len(set(row_texts)),
        n_texts,
        cache.n_embedded - n_texts,
    )
    return JudgeScores(auroc_columns(LabelScorer(sets, rows, row_emb), embedded, prefix="judge_"), cache.n_embedded)
