"""One word per feature for how far to trust its label, and one number to sort by.

verdict (the names: run_schema.VERDICTS)
  dead            never fired on the train split;
  weak            too rare to tell (fewer than `coherence_min_docs` distinct source documents in
                  its top texts) or no keyword recurs in its top texts (no label);
  token           its top texts share a surface pattern of the tokenizer (a leading word-piece, a
                  word-piece, numbers) and, with it masked, no more than random texts do
                  (token_features.py), or one whole word in unrelated senses, and almost
                  nothing without it (word_features.py); its label says which pattern;
  mixed           coherence < `coherence_min`: its top texts share little more than random texts
                  do, so whatever its keywords say, they do not name one thing; or, set after its
                  head term is chosen (feature_table.py), no head term fits them (below
                  `concept_support_min`, naming/concept.py);
  interpretable   the rest, and (named_verdicts) a feature mixed by its coherence alone whose head
                  term, chosen from its concept.FIT_TEXTS most activating texts, fits each
                  of their documents but one at `concept_support_min`: texts on syllables, on
                  dielectrics or on comas that the model finds only moderately alike (12 of the
                  61 features blind readers read coherent over r10-r12 were mixed; the rule names
                  9 of those 12 and 3 of their 38 other mixed features). The whole-word test
                  (word_features.py) then runs on these features too, since a word shared in
                  unrelated senses ("seal") fits each of its texts as well as a concept does.
label_score
  The label's AUROC against hard negatives (by the store's model), which says whether the label
  names what the feature picks out, times a coherence factor min(1, coherence / `score_coherence`)
  that ranks a feature whose texts are less alike lower: a mixed feature's label below an
  interpretable one's of the same AUROC, and, among interpretable features, texts that share a
  theme throughout above texts held together by a word or a few of them (the factor stopped at
  `coherence_min` before, and 50 features of the seed-0 default run tied at 1.0; strict blind
  readers read 18 and 11 of the two default runs' top 50 as token features then, 2 and 7 now:
  docs/interpretation/reading.md); NaN where the label could not
  be scored. Coherence is the masked one where a surface pattern was found, so a token feature's
  score is held down the same way, and, where one word is in half of the top texts
  (word_features.py), the lower of it and their coherence without the word: a feature whose
  texts are alike mostly through one word ("giant", "Irving": 1.1 to `coherence_min` without it)
  stays interpretable but ranks below one whose texts share a meaning beyond their word.
"""

from __future__ import annotations

import numpy as np

from ...run_schema import DEAD, INTERPRETABLE, MIXED, TOKEN, WEAK

__all__ = ["label_scores", "named_verdicts", "verdicts"]


def verdicts(
    dead: np.ndarray,
    coherence: np.ndarray,
    has_label: np.ndarray,
    coherence_min: float,
    is_token: np.ndarray | None = None,
) -> np.ndarray:
    out = np.full(len(dead), INTERPRETABLE, dtype=object)
    out[np.nan_to_num(coherence, nan=np.inf) < coherence_min] = MIXED
    if is_token is not None:
        out[is_token] = TOKEN
    out[np.isnan(coherence) | ~has_label] = WEAK
    out[dead] = DEAD
    return out


def label_scores(
    auroc_hard: np.ndarray, coherence: np.ndarray, score_coherence: float, without_word: np.ndarray | None = None
) -> np.ndarray:
    """without_word: the top texts' coherence without their shared word (NaN where none was tested)."""
    if without_word is not None:
        coherence = np.where(np.isnan(without_word), coherence, np.fmin(coherence, without_word))
    factor = np.clip(np.nan_to_num(coherence, nan=0.0) / max(score_coherence, 1e-12), 0.0, 1.0)
    return auroc_hard * factor


def named_verdicts(verdict: np.ndarray, support: np.ndarray, floor: np.ndarray, support_min: float) -> np.ndarray:
    """The verdicts once each feature's head term is chosen (support, floor: concept.concept_support
    and concept.support_floor, NaN where none was): an interpretable feature no name fits
    (support < support_min) is mixed; a mixed one (by its coherence) whose name fits on average
    and fits all but one of its texts the reader sees (floor >= support_min) is interpretable."""
    out = verdict.copy()
    fits = support >= support_min
    out[(verdict == INTERPRETABLE) & ~fits] = MIXED
    out[(verdict == MIXED) & fits & (floor >= support_min)] = INTERPRETABLE
    return out
