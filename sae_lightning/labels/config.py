"""The settings of one labelling pass. conf/labeling/keybert.yaml is where each is documented; the
defaults here equal it (tests/test_defaults.py checks), so a hand-built config labels as
`sae-train` does."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

LABEL_EMBEDDINGS = ("keywords", "string")


@dataclass
class LabelingConfig:
    """How features are named and scored. Hydra may hand lists/None as strings or ListConfig;
    `__post_init__` normalises them so the dataclass is also safe to build by hand."""

    m: int = 30  # top-activating training texts per feature (the label's evidence)
    top_n: int = 3  # keywords per label
    diversity: float = 0.3  # MMR: 0 = most similar to the feature, 1 = most diverse keywords
    use_mmr: bool = True
    shortlist: int = 20  # KeyBERT's best candidates per feature that the evidence rerank picks from
    evidence_power: float = 0.5  # weight of the candidates' TF-IDF in the rerank (0: KeyBERT's own pick)
    keyword_min_relevance: float = 0.3  # a keyword after the first needs this share of the first's relevance
    ngram_range: tuple[int, int] = (1, 2)  # candidate keyphrase lengths, in words
    stop_words: str | list[str] | None = "english"
    min_df: int = 1  # a candidate must occur in the top texts of at least this many features
    min_texts: int = 2  # ... and in this many of its top texts from distinct source documents
    distinct_documents: bool = True  # min_texts counts distinct source documents (False: texts)
    activation_weights: bool = True  # candidate counts weighted by the text's activation
    numbers_min_share: float = 0.2  # bare-number keywords only where numbers are this share of the texts' words
    max_features: int | None = None  # cap on the candidate vocabulary (most frequent kept)
    doc_embedding: str = "decoder"  # mean | concat | decoder (see labeling.doc_embeddings)
    label_embedding: str = "keywords"  # keywords | string: what embed(label) is (see label_embedding.py)
    concept_contrast: float = 0.0  # concept = argmax cos(top texts) - this x cos(train hard negatives)
    m_pos: int = 20  # scoring positives: validation texts across the activation range
    n_negatives: int = 200  # random negatives: sampled validation texts where the feature is 0
    n_hard: int = 50  # hard negatives: non-firing validation texts nearest the positives
    coherence_min_docs: int = 3  # fewer distinct documents in the top texts: coherence NaN, verdict weak
    coherence_pairs: int = 20000  # random text pairs of the coherence baseline
    coherence_min: float = 1.75  # coherence below this: verdict mixed
    token_share_gap: float = 0.45  # a surface pattern's share of top texts minus of random texts: token candidate
    judge_model: str | None = None  # a second sentence-transformers model that also scores the labels
    seed: int = 0  # negatives and the random-label baseline
    batch_size: int = 4096  # store rows per SAE encode
    device: str | None = None  # None: wherever the SAE's parameters are
    # threads of the phases made of many small operations (runtime.limited_threads); None: the caller's
    small_op_threads: int | None = 1

    def __post_init__(self) -> None:
        if self.judge_model in ("", "null", "None"):
            self.judge_model = None
        if self.stop_words is not None and not isinstance(self.stop_words, str):
            self.stop_words = [str(w) for w in self.stop_words]
        if not isinstance(self.ngram_range, (str, int, float)):  # a ListConfig or tuple: compare as a list
            self.ngram_range = list(self.ngram_range)
        # One source of ranges and choices: the rules every composed config is checked against.
        from ..validate import check_settings

        check_settings("labeling", {f.name: getattr(self, f.name) for f in fields(self)})
        self.ngram_range = tuple(self.ngram_range)  # type: ignore[assignment]

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> LabelingConfig:
        """Build from a Hydra `labeling` node, ignoring its keys that are not labelling settings
        (enabled, every_n_epochs, _target_ ...)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in dict(raw or {}).items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ngram_range"] = list(self.ngram_range)
        return out
