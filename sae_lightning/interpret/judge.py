"""An independent judge: the labels scored by a second sentence-transformers model.

A label made with the store's model and graded by that same model is graded by its author.
With `labeling.judge_model` set (a path, or a name `embed.load_model` resolves), the judge embeds
the labels (as the store's model does, `labeling.label_embedding`) and the scoring texts itself,
and the same AUROCs are computed (`judge_<set>_auroc`, `judge_<set>_auroc_hard`). Its phrase and
text embeddings are cached with the store, under the judge's own model key (phrase_cache.py)."""
from __future__ import annotations

import numpy as np

from ..embed import load_model
from .label_embedding import embed_labels
from .label_scoring import LabelScorer, auroc_columns, scored_rows
from .phrase_cache import PhraseEmbeddingCache, cache_folder
from .scoring_sets import ScoringSets


def judge_column_names(label_sets) -> list[str]:
    return [f"judge_{name}_{kind}" for name in label_sets for kind in ("auroc", "auroc_hard")]


def judge_columns(judge_model: str | None, store, texts: np.ndarray, sets: ScoringSets,
                  label_sets: dict[str, list[list[str]]], label_embedding: str, n_features: int) -> dict[str, np.ndarray]:
    """judge_<set>_auroc(_hard) per label set; NaN columns when no judge is configured."""
    if judge_model is None:
        return {name: np.full(n_features, np.nan) for name in judge_column_names(label_sets)}
    model = load_model(judge_model)
    cache = PhraseEmbeddingCache(
        cache_folder(store.path, judge_model, getattr(model, "max_seq_length", None)),
        lambda phrases: model.encode(phrases, batch_size=256, convert_to_numpy=True, show_progress_bar=False))
    rows = scored_rows(sets)
    row_emb = cache.get([str(t) for t in texts[rows]]) if len(rows) else np.zeros((0, 1), np.float32)
    dim = int(model.get_sentence_embedding_dimension())
    embedded = {name: (kws, embed_labels(kws, cache, label_embedding, dim)) for name, kws in label_sets.items()}
    return auroc_columns(LabelScorer(sets, rows, row_emb), embedded, prefix="judge_")
