"""The `labeling` group: KeyBERT feature labels (no LLM, no API), each feature's coherence and
verdict, and label scores against baselines. Each field states its default, type, meaning and range
once; conf/labeling/keybert.yaml is a preset on top (it ties `seed` and `small_op_threads` to the
run's), and a LabelingConfig built in Python is checked by the same rules as the command line's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import UserError
from .knobs import (
    POSITIVE,
    SEED,
    TOP_TEXTS,
    Rule,
    check_fields,
    flag,
    is_num,
    knob,
    list_of,
    number,
    one_of,
    text,
    threads,
    whole,
)

LABEL_EMBEDDINGS = ("keywords", "string")
STOP_WORDS = Rule(
    "english, a list of words, or null",
    lambda v: v == "english" or (isinstance(v, list) and all(isinstance(w, str) for w in v)),
    True,
)


def labeling_problem(labeling: Mapping[str, Any], d_sae: Any = None) -> str | None:
    """The rules over two knobs of the group, and over min_df and the SAE's width where it is known
    (the composed config, checked before training, a LabelingConfig built in Python and sae-label
    before its scan are checked by this same function)."""
    score, floor = labeling.get("score_coherence"), labeling.get("coherence_min")
    if is_num(score) and is_num(floor) and score < floor:  # else a mixed feature could outrank an interpretable one
        return (
            f"labeling.score_coherence={score:g} is below labeling.coherence_min={floor:g}; "
            "set it to at least coherence_min"
        )
    # Past these no keyword passes (or no coherence is measured): every label empty, or every verdict
    # weak, and that labelling current.
    texts, m, min_df = labeling.get("min_texts"), labeling.get("m"), labeling.get("min_df")
    if is_num(texts) and is_num(m) and texts > m:
        return (
            f"labeling.min_texts={texts} is above labeling.m={m}, the top texts a keyword is counted in, "
            "so no feature could get a label; set it to at most m"
        )
    docs = labeling.get("coherence_min_docs")
    if is_num(docs) and is_num(m) and docs > m:  # m top texts hold at most m documents: every coherence NaN
        return (
            f"labeling.coherence_min_docs={docs} is above labeling.m={m}, the top texts whose documents are "
            "counted, so every feature's coherence would be NaN and its verdict weak; set it to at most m"
        )
    if is_num(min_df) and is_num(d_sae) and min_df > d_sae:
        return (
            f"labeling.min_df={min_df} is above the SAE's {d_sae} features, the documents a keyword is "
            f"counted in, so no feature could get a label; set it to at most {d_sae}"
        )
    return None


@dataclass
class LabelingConfig:
    """How features are named and scored. Hydra may hand lists/None as strings or ListConfig;
    `__post_init__` normalises them so the dataclass is also safe to build by hand."""

    enabled: bool = knob(True, "false: no labelling during training (sae-label can do it later)", flag())
    every_n_epochs: int = knob(0, "also label every N epochs (0: only at the end of training)", whole(0))
    m: int = knob(30, "top-activating training texts per feature (the label's evidence)", TOP_TEXTS)
    top_n: int = knob(3, "keywords per label (at most: only keywords that recur across documents are kept)", POSITIVE)
    use_mmr: bool = knob(True, "maximal marginal relevance: diverse keywords", flag())
    shortlist: int = knob(20, "KeyBERT's best candidates per feature (by cosine) that the rerank picks from", POSITIVE)
    evidence_power: float = knob(
        0.5, "rerank weight of a candidate's TF-IDF in the top texts (0: KeyBERT's own top_n)", number(0)
    )
    keyword_min_relevance: float = knob(
        0.3, "a keyword after the first is kept only with this share of the first's rerank relevance", number(0, 1)
    )
    diversity: float = knob(0.3, "MMR diversity (0: most similar, 1: most diverse)", number(0, 1))
    # Every phrase of lo..hi words of every top text is a candidate, held for all features at once:
    # bounded at 10 times the default's longest, like the scoring sets' sizes below.
    ngram_range: tuple[int, int] = knob(
        (1, 2),
        "candidate keyphrase lengths in words",
        list_of(
            whole(1, 20), "[lo, hi] with 1 <= lo <= hi <= 20, e.g. [1, 2]", check=lambda v: len(v) == 2 and v[0] <= v[1]
        ),
    )
    stop_words: str | list[str] | None = knob("english", "stop-word list for candidates (null: none)", STOP_WORDS)
    min_df: int = knob(1, "a candidate must appear in at least this many features' texts", POSITIVE)
    min_texts: int = knob(2, "... and in this many of the feature's top texts from distinct source documents", POSITIVE)
    distinct_documents: bool = knob(
        True,
        "min_texts counts distinct source documents (false: texts; a keyword of "
        "one article's sentences names that article)",
        flag(),
    )
    activation_weights: bool = knob(
        True, "candidate counts weighted by each top text's activation (false: every top text counts 1)", flag()
    )
    numbers_min_share: float = knob(
        0.2,
        'bare numbers ("2024", "000") are keywords only where numbers are this share of the texts\' words',
        number(0, 1),
    )
    max_features: int | None = knob(None, "cap on the candidate vocabulary (null: no cap)", whole(1, null=True))
    doc_embedding: str = knob(
        "decoder", 'a feature\'s "document" embedding for KeyBERT', one_of("decoder", "mean", "concat")
    )
    label_embedding: str = knob(
        "keywords",
        "keywords (mean of keyword embeddings, free) | string (embed the joined label)",
        one_of(*LABEL_EMBEDDINGS),
    )
    concept_contrast: float = knob(
        0.0,
        "the concept (head term) maximises cos(top texts) - this x cos(train-side "
        "hard negatives); 0: the name a blind reader agrees with (docs/interpretation)",
        number(0),
    )
    concept_support_min: float = knob(
        4.0,
        "an interpretable feature whose best head term sits on average less than this many spreads "
        "above random texts in cosine with its top texts is mixed: no name fits them; a feature mixed by "
        "its coherence whose head term fits all of its first top texts' documents but one at this level "
        "is interpretable (docs/interpretation)",
        number(),
    )
    # The scoring sets are held for every feature at once (and compared positive x negative), the
    # coherence baseline's pairs as [pairs, d] embeddings, like m's texts: bounded at 10 times their
    # defaults, so a mistyped size is one line, not a MemoryError or an OOM kill after the scan.
    m_pos: int = knob(20, "scoring positives: validation texts at evenly spaced activation ranks", whole(1, 200))
    n_negatives: int = knob(200, "random negatives: validation texts where the feature is zero", whole(1, 2000))
    n_hard: int = knob(
        50, "hard negatives: zero-activation validation texts nearest the positives' centroid", whole(1, 500)
    )
    coherence_min_docs: int = knob(
        3, "fewer distinct source documents among the top texts: coherence NaN, verdict weak", whole(2)
    )
    coherence_pairs: int = knob(
        20000, "random train-text pairs that give coherence its baseline (mean, spread)", whole(1, 200_000)
    )
    coherence_min: float = knob(
        1.75,
        "coherence below this: verdict mixed (set from read features of the default run, docs/interpretation)",
        number(),
    )
    score_coherence: float = knob(
        3.5,
        "coherence at which label_score stops rising with it: features whose texts are less alike "
        "rank lower (coherence_min: only mixed ones; docs/interpretation)",
        number(0),
    )
    token_share_gap: float = knob(
        0.45,
        "a tokenizer pattern (leading word-piece, word-piece, numbers) in this much "
        "larger a share of a feature's top texts than of random texts is masked; if its "
        "texts then fall below coherence_min: verdict token",
        number(0, 1),
    )
    judge_model: str | None = knob(
        None,
        "a second sentence-transformers model (path or name) that also scores the labels",
        text(null=True, example="all-mpnet-base-v2"),
    )
    seed: int = knob(0, "random-label baseline and negative sampling", SEED)
    # Each encode pass holds [batch_size, d_sae] dense activations (50 MB at 4096 rows and the default
    # d_sae 3072); bounded at 10 times the default like the sizes above: 10**12 read the store whole.
    batch_size: int = knob(4096, "rows per SAE encode pass", whole(1, 40_960))
    small_op_threads: int | None = knob(
        1,
        "threads of the small-op phases (top-k merges, KeyBERT's loop, scoring); null: the caller's",
        threads(null=True),
    )
    device: str | None = None  # not a knob: None labels wherever the SAE's parameters are

    def __post_init__(self) -> None:
        if self.judge_model in ("", "null", "None"):
            self.judge_model = None
        if self.stop_words is not None and not isinstance(self.stop_words, str):
            self.stop_words = [str(w) for w in self.stop_words]
        if not isinstance(self.ngram_range, (str, int, float)):  # a ListConfig or tuple: compare as a list
            self.ngram_range = list(self.ngram_range)
        check_fields(self, "labeling")
        problem = labeling_problem(asdict(self))
        if problem:
            raise UserError(problem)
        self.ngram_range = tuple(self.ngram_range)  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """The settings of the pass (labeling.json): whether and when to label is the pipeline's."""
        out = {k: v for k, v in asdict(self).items() if k not in ("enabled", "every_n_epochs")}
        out["ngram_range"] = list(self.ngram_range)
        return out
