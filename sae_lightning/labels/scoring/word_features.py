"""Whole-word features: features whose top texts share one word, used in unrelated senses.

After the word-piece step (token_features.py), the 50 best interpretable features of the default
run still held about ten that fire on one whole word whatever it means: "brown" (the colour, brown
bears, people named Brown), "golden" (golden ratio, Golden Gate), "black" (black market, Black
Sea), "second", "record", "city". Their texts are alike to the model because they share the word.

A feature is tested when one word (not a stop word, not a number) is in at least `MIN_SHARE` of its
12 most activating top texts (one per source document, as coherence counts them) and exceeds its
share among random train texts by `labeling.token_share_gap`. The word is deleted from them, the
rest embedded again by the store's model (through the phrase cache: a relabel embeds
nothing) and coherence measured again. Below `MASKED_COHERENCE_MIN` the texts share nothing but
the word: a token feature, labelled `token: "brown"` (a whole word: no ellipsis).

The floor is lower than `coherence_min` on purpose: a concept named by one word loses much of its
coherence with the word masked too (texts on France without "France": 3.9 -> 2.2 on the default
run; the word-piece step's floor, 1.75, made coherent country features token features), but keeps
more than texts that share only a word ("golden" 2.3 -> 0.04, "brown" 3.2 -> 0.9).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from ...run_schema import TOKEN, verdict_marked
from .token_features import MASKED_TEXTS, WORD, base_sample, masked_coherence

# Share of a feature's top texts (one per document) holding the word: half of them. The share
# above random texts (`labeling.token_share_gap`) keeps common words out, and the masked-coherence
# floor keeps self-named concepts interpretable. At 0.75 the default run tested about 240 features
# and missed words in 6-8 of 12 texts ("record", "line", "code", "bear", "age"); at 0.5 it tests
# about 600 (2,000 masked texts embedded once per store instead of 300), and on the dev readings
# no feature read coherent becomes a token feature that did not at 0.75.
MIN_SHARE = 0.5
# Masked coherence below which the texts share only the word. Set on the blind readings of the
# default run (docs/interpretation/reading.md, "Whole words"): the whole-word features read as
# such fall to 0.04-1.07 with their word masked, coherent self-named ones stay at 1.5 or above
# but for one ("death": 0.57).
MASKED_COHERENCE_MIN = 1.1
MIN_WORD_CHARS = 3


@dataclass
class WordFeatures:
    is_token: np.ndarray  # [F] bool: the top texts share the word and nothing else
    coherence: np.ndarray  # [F] coherence with the word masked (NaN where not tested)
    labels: list[str]  # [F] 'token: "brown"' where is_token, else ""
    reasons: list[str]  # [F] why, where is_token, else ""
    n_embedded: int  # masked texts embedded now (0 on a warm cache)


def shared_word(texts: list[str], stop: frozenset[str]) -> tuple[str, float]:
    """The content word in most of the texts (ties: alphabetical) and the share holding it."""
    counts = Counter(
        w
        for t in texts
        for w in {w.lower() for w in WORD.findall(t)}
        if len(w) >= MIN_WORD_CHARS and not w.isdigit() and w not in stop
    )
    if not counts:
        return "", 0.0
    word = min(counts, key=lambda w: (-counts[w], w))
    return word, counts[word] / len(texts)


def without_word(text: str, word: str) -> str:
    return " ".join(re.sub(rf"\b{re.escape(word)}\b", "", text, flags=re.IGNORECASE).split())


def word_features(
    doc_rows: np.ndarray,
    n_docs: np.ndarray,
    tested: np.ndarray,
    texts: np.ndarray,
    train_rows: np.ndarray,
    cache,
    stop: frozenset[str],
    mu: float,
    sigma: float,
    gap: float,
    seed: int = 0,
) -> WordFeatures:
    """doc_rows/n_docs: coherence's top rows one per document; tested: the features to test (those
    that would be interpretable); cache: the store model's phrase cache; mu, sigma: coherence's
    random-pair baseline."""
    F = len(doc_rows)
    out = WordFeatures(np.zeros(F, bool), np.full(F, np.nan), [""] * F, [""] * F, 0)
    found: dict[int, tuple[str, float]] = {}
    for f in np.flatnonzero(tested):
        word, share = shared_word([str(texts[r]) for r in doc_rows[f, : min(n_docs[f], MASKED_TEXTS)]], stop)
        if share >= MIN_SHARE:
            found[int(f)] = (word, share)
    if not found:
        return out
    base_rows = base_sample(train_rows, seed)
    words = {w for w, _ in found.values()}
    held = Counter(w for r in base_rows for w in {w.lower() for w in WORD.findall(str(texts[r]))} if w in words)
    base = {w: held[w] / len(base_rows) for w in words}
    found = {f: (w, s) for f, (w, s) in found.items() if s - base[w] >= gap}
    per_feature = {
        f: [without_word(str(texts[r]), w) for r in doc_rows[f, : min(n_docs[f], MASKED_TEXTS)]]
        for f, (w, _) in found.items()
    }
    scores, out.n_embedded = masked_coherence(per_feature, cache, mu, sigma)
    for f, (word, share) in found.items():
        score = scores[f]
        out.coherence[f] = score
        if score < MASKED_COHERENCE_MIN:
            out.is_token[f] = True
            out.labels[f] = verdict_marked(TOKEN, f'"{word}"')
            out.reasons[f] = (
                f'the word "{word}" in {share:.0%} of its top texts against {base[word]:.1%} of random '
                f"texts; without it their coherence is {score:.2f}"
            )
    return out
