"""embed(label) for label scoring, by the model that embedded the store's texts.

LabelingConfig.label_embedding picks what the label's vector is:
  keywords  the mean of its keywords' unit embeddings (default). Every keyword is a candidate
            KeyBERT already embedded, so this costs nothing, and a label reads as a set of
            keywords, not as one comma-separated sentence.
  string    the model's embedding of the label string itself ("kw1, kw2, kw3"): one more model
            call per distinct label (about 12k for a 6144-feature SAE and its TF-IDF baseline,
            roughly a minute on 2 CPU cores when the phrase cache is cold).
Unlabelled features get a zero vector; the scorer ignores them.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix

from ...schemas.labeling import LABEL_EMBEDDINGS
from ..scoring.scoring_sets import unit_vectors
from .phrase_cache import PhraseEmbeddingCache
from .phrases import repeats

LABEL_SEPARATOR = ", "
CONCEPT_SEPARATOR = " — "  # a label reads "concept — keyword, keyword"


def label_text(concept: str, keywords: list[str]) -> str:
    """The label as shown: its concept (head term), then the keywords that do not repeat it
    (the concept alone when all do); just the keywords where there is no concept."""
    if not concept:
        return LABEL_SEPARATOR.join(keywords)
    shown = [k for k in keywords if not repeats(k, concept)]
    return f"{concept}{CONCEPT_SEPARATOR}{LABEL_SEPARATOR.join(shown)}" if shown else concept


def embed_labels(keyword_lists: list[list[str]], cache: PhraseEmbeddingCache, mode: str, dim: int) -> np.ndarray:
    """[n, dim] float32, one row per keyword list (zeros where the list is empty)."""
    out = np.zeros((len(keyword_lists), dim), dtype=np.float32)
    has = [i for i, kws in enumerate(keyword_lists) if kws]
    if not has:
        return out
    if mode == "string":
        labels = [LABEL_SEPARATOR.join(keyword_lists[i]) for i in has]
        out[has] = cache.get(labels)
        return out
    if mode != "keywords":
        raise ValueError(f"labeling.label_embedding={mode!r} must be one of {', '.join(LABEL_EMBEDDINGS)}")
    flat = [k for i in has for k in keyword_lists[i]]
    emb = unit_vectors(cache.get(flat))
    sizes = np.array([len(keyword_lists[i]) for i in has])
    owner = np.repeat(np.arange(len(has)), sizes)
    mean = csr_matrix(((1.0 / sizes)[owner], (owner, np.arange(len(flat)))), shape=(len(has), len(flat)))
    out[has] = mean @ emb
    return out
