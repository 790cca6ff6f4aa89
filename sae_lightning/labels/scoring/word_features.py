"""Whole-word features: features whose top texts share one word, used in unrelated senses.

After the word-piece step (token_features.py), the 50 best interpretable features of the default
run still held about ten that fire on one whole word whatever it means: "brown" (the colour, brown
bears, people named Brown), "golden" (golden ratio, Golden Gate), "black" (black market, Black
Sea), "second", "record", "city". Their texts are alike to the model because they share the word.

A feature is tested on each of its CANDIDATES most shared words (not a stop word, not a number;
a word and its forms count as one: its plural, "giant" and "giants", and the words it leads in the
store model's tokenizer, "skin" and "skinks" (skin ##ks), "flag" and "flagella" (flag ##ella): the
model reads the piece in both, which held "skin cancer" and "flagellates" features together with
texts on skinks and on national flags) that is in at
least `MIN_SHARE` of its 12 most activating top texts (one per source document, as coherence counts
them) and exceeds its share among random train texts by `labeling.token_share_gap`. The word and
its forms are deleted from them, the rest embedded again by the store's model (through the phrase
cache: a relabel embeds nothing) and coherence measured again. Below `MASKED_COHERENCE_MIN` the
texts share nothing but the word: a token feature, labelled `token: "brown"` (a whole word: no
ellipsis; `token: "flag…"` where words it leads are among its forms), after the word whose masking
leaves the least.

The floor is lower than `coherence_min` on purpose: a concept named by one word loses much of its
coherence with the word masked too (texts on France without "France": 3.9 -> 2.2 on the default
run; the word-piece step's floor, 1.75, made coherent country features token features), but keeps
more than texts that share only a word ("golden" 2.3 -> 0.04, "brown" 3.2 -> 0.9).
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ...run_schema import TOKEN, verdict_marked
from .token_features import MASKED_TEXTS, WORD, Patterns, base_sample, masked_coherence, single_spaced

# Share of a feature's top texts (one per document) holding the word or one of its forms: half of them.
# The share above random texts (`labeling.token_share_gap`) keeps common words out, and the
# masked-coherence floor keeps self-named concepts interpretable. At 0.75 the default run tested
# about 240 features and missed words in 6-8 of 12 texts ("record", "line", "code", "bear", "age").
MIN_SHARE = 0.5
# Masked coherence below which the texts share only the word. Set on the blind readings of the
# default run (docs/interpretation/reading.md, "Whole words"): the whole-word features read as
# such fall to 0.04-1.07 with their word masked, coherent self-named ones stay at 1.5 or above but
# for "death" (0.57). The r6 readings' whole words ("irving", "miller", "induction", "ash") sit at
# 1.3-1.5 with coherent ones ("kuwait" 1.25, "juice" 1.28): at 1.3 the dev readings lost a coherent
# feature for each token one caught, so the floor stays (reading.md, "Since r6").
MASKED_COHERENCE_MIN = 1.1
MIN_WORD_CHARS = 3
# The most shared words tested per feature: the word a feature fires on can come second to a word
# its texts share for another reason ("miller" after "american" over texts on American Millers).
CANDIDATES = 2


@dataclass
class WordFeatures:
    is_token: np.ndarray  # [F] bool: the top texts share the word and nothing else
    coherence: np.ndarray  # [F] coherence with the word masked (NaN where not tested)
    labels: list[str]  # [F] 'token: "brown"' where is_token, else ""
    reasons: list[str]  # [F] why, where is_token, else ""
    n_embedded: int  # masked texts embedded now (0 on a warm cache)


Lead = Callable[[str], "str | None"]  # word -> its first word-piece where it has two or more, else None


def _plain(word: str) -> str:
    """The word without accents, as the tokenizer reads it ("Kālī" -> "kali", "Çatal" -> "catal")."""
    if word.isascii():
        return word
    return "".join(c for c in unicodedata.normalize("NFD", word) if not unicodedata.combining(c))


def _base(word: str, bases: set[str], lead: Lead | None) -> str:
    """The base in `bases` that `word` is a form of: its singular ("giants" -> "giant"), or the
    word its first word-piece is ("skinks" -> "skin", "flagellates" -> "flag"); itself where none."""
    single = next((word[: -len(s)] for s in ("es", "s") if word.endswith(s) and word[: -len(s)] in bases), word)
    plain = _plain(single) if lead is not None else ""
    if not any(plain[:i] in bases for i in range(MIN_WORD_CHARS, len(plain))):
        return single  # no base starts it: not worth tokenizing (most words of random texts)
    first = lead(single)
    return first if first is not None and first in bases else single


def shared_words(
    texts: list[str], stop: frozenset[str], n: int = CANDIDATES, lead: Lead | None = None
) -> list[tuple[str, float]]:
    """The n content words in most of the texts, a word and its forms as one (ties:
    alphabetical), each with the share of texts holding it."""
    held = [{w.lower() for w in WORD.findall(t) if len(w) >= MIN_WORD_CHARS and not w.isdigit()} - stop for t in texts]
    words = set().union(*held) if held else set()
    base = {w: _base(w, words, lead) for w in words}
    counts = Counter(b for h in held for b in {base[w] for w in h})
    return [(w, counts[w] / len(texts)) for w in sorted(counts, key=lambda w: (-counts[w], w))[:n]]


def base_shares(texts: list[str], words: set[str], lead: Lead | None = None) -> dict[str, float]:
    """The share of `texts` holding each word or one of its forms: a text counts once, whichever of
    the forms it holds ("a giant among giants")."""
    held = Counter(b for t in texts for b in {_base(w.lower(), words, lead) for w in WORD.findall(t)} if b in words)
    return {w: held[w] / max(len(texts), 1) for w in words}


def without_word(text: str, word: str, lead: Lead | None = None) -> str:
    """The text without the word and its forms."""
    bases = {word}
    return single_spaced(WORD.sub(lambda m: "" if _base(m.group().lower(), bases, lead) == word else m.group(), text))


def _leads_in(texts: list[str], word: str, lead: Lead) -> bool:
    """Whether a word the texts hold is of `word`'s forms through its first word-piece ("flagella")."""
    return any(lead(w.lower()) == word for t in texts for w in WORD.findall(t))


def word_features(
    doc_rows: np.ndarray,
    n_docs: np.ndarray,
    tested: np.ndarray,
    texts: np.ndarray,
    embeddings,
    train_rows: np.ndarray,
    cache,
    stop: frozenset[str],
    mu: float,
    sigma: float,
    gap: float,
    seed: int = 0,
    tokenizer=None,
) -> WordFeatures:
    """doc_rows/n_docs: coherence's top rows one per document; tested: the features to test (those
    that would be interpretable); texts, embeddings: the store's; cache: the store model's phrase
    cache; mu, sigma: coherence's random-pair baseline; tokenizer: the store model's, for the words
    a word leads (None: a word's plural is its only other form)."""
    lead = Patterns(tokenizer).lead if tokenizer is not None else None
    F = len(doc_rows)
    out = WordFeatures(np.zeros(F, bool), np.full(F, np.nan), [""] * F, [""] * F, 0)
    rows = {int(f): doc_rows[f, : min(n_docs[f], MASKED_TEXTS)] for f in np.flatnonzero(tested)}
    tops = {f: [str(texts[r]) for r in rs] for f, rs in rows.items()}
    found = {f: [(w, s) for w, s in shared_words(ts, stop, lead=lead) if s >= MIN_SHARE] for f, ts in tops.items()}
    found = {f: ws for f, ws in found.items() if ws}
    if not found:
        return out
    base_rows = base_sample(train_rows, seed)
    words = {w for ws in found.values() for w, _ in ws}
    base = base_shares([str(texts[r]) for r in base_rows], words, lead)
    tests = [(f, w, s) for f, ws in found.items() for w, s in ws if s - base[w] >= gap]
    masked = {(f, w): [(r, without_word(t, w, lead)) for r, t in zip(rows[f], tops[f])] for f, w, _ in tests}
    scores, out.n_embedded = masked_coherence(masked, texts, embeddings, cache, mu, sigma)
    chosen = {}  # feature -> the masked coherence of the word its label names
    for f, word, share in tests:
        score = scores[(f, word)]
        out.coherence[f] = score if np.isnan(out.coherence[f]) else min(score, out.coherence[f])
        # of two words that fire, the label names the one the texts lean on more: "irving", not
        # "american", over texts on Irving Berlin and Irving Langmuir, American both
        if score >= MASKED_COHERENCE_MIN or chosen.get(f, np.inf) <= score:
            continue
        out.is_token[f], chosen[f] = True, score
        shown = f"{word}…" if lead is not None and _leads_in(tops[f], word, lead) else word
        out.labels[f] = verdict_marked(TOKEN, f'"{shown}"')
        out.reasons[f] = (
            f'the word "{shown}" in {share:.0%} of its top texts against {base[word]:.1%} of random texts; '
            f"without it their coherence is {score:.2f}"
        )
    return out
