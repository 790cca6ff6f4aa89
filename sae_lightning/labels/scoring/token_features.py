"""Token features: features whose top texts share a surface pattern rather than a meaning.

On the default wiki run, several features fire on sentences whose subject begins with one word-piece
of the embedder's tokenizer ("cr": CRT, Cronkite, crochet, Cruyff) or shares a continuation piece
("…ism") or bare numbers (years 1924, 1937). Their texts are alike to the model *because* they
share those tokens, so coherence measured with that model calls them coherent. Two steps find them:

1. A contrastive rate, with the store model's own tokenizer. Per text, its patterns are
     pre:<p>   a word of two or more pieces whose first piece is p   ("cr" of "cr ##oche ##t")
     initial:<c>  a word of two or more pieces beginning with letter c  (Dnipro, dromedary, Dagestan)
     any:<p>   a continuation piece p inside a word                  ("ism" of "impression ##ism")
     numbers   a word of digits
   A pattern is a candidate of a feature when the share of its top texts (one per source document,
   as coherence counts them) holding it exceeds the share of random train texts holding it by at
   least `labeling.token_share_gap`, and it is carried by words of at least MIN_FAMILIES word
   families. One word shared by all texts ("magnetic") is a keyword, not a sub-word pattern, and so
   is one word family: "…deh…" of aldehydes, formaldehyde and acetaldehyde, "…asa…" of quasar and
   quasars. A word is of another's family when they have one stem or its stem holds the other's
   (`word_families`); such a feature is left to the whole-word step (word_features.py), whose
   masked-coherence floor suits a concept named by one word. Pieces of unrelated words stay
   patterns: CRT, Cronkite, crochet, Cruyff; impressionism, cubism, surrealism; Kaliningrad, Kalidasa.
2. A masked coherence. (A candidate whose coherence is already below `coherence_min` is a token
   feature as it is: its texts share the pattern and nothing more.) The words carrying the feature's
   candidates are deleted from those top texts, the rest is embedded again by the store's model
   (through the phrase cache, so a relabel
   embeds nothing), and coherence is measured as before. Below `coherence_min`, the texts share
   nothing but the pattern: the verdict is `token`. Either way the feature's coherence becomes the
   lower of the two, so a shared token never makes texts look more alike than their meaning does.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix

from ...run_schema import TOKEN, verdict_marked
from ..naming.phrases import stem
from .coherence import mean_pairwise_cosine
from .scoring_sets import unit_vectors

WORD = re.compile(r"\w+")
NUMBERS = "numbers"
MIN_FAMILIES = 3  # word families carrying a pattern among a feature's top texts
# A word whose stem holds another word's stem of this many letters is of its family ("formaldehyde"
# holds "aldehyd", "meteorites" "meteor"). Shorter stems are often a leading piece of unrelated words
# ("gang" of the Ganges, ganglia and gangrene; "kali" of Kaliningrad and Kalidasa). On the default
# runs 5 also joined candied with Candide (stem "candi"), 7 kept "tellur…" and "amorph…" apart.
FAMILY_STEM_MIN = 6
# The label names the longest pattern whose gap is within this of the widest: "cart…" rather than
# "c…" when both cover about as many of the texts.
LABEL_GAP_SLACK = 0.15
BASE_TEXTS = 4000  # random train texts that give each pattern's base rate
# Masked texts per candidate: its most activating top texts, one per document. Embedding sentences
# is the cost of this step (1,570 on the default run); on it, at gap 0.5, 12 gave 117 token features
# where all 30 gave 124 (7 differ), at ~40 % of the cost.
MASKED_TEXTS = 12


@dataclass
class TokenFeatures:
    is_token: np.ndarray  # [F] bool: the top texts share the pattern and nothing else
    coherence: np.ndarray  # [F] coherence after masking (the input's where nothing was masked)
    labels: list[str]  # [F] 'token: "cr…"', 'numbers: 1924, 1937' ("" where no candidate)
    reasons: list[str]  # [F] why ("" where no candidate)
    n_embedded: int  # masked texts embedded now (0 on a warm cache)


class Patterns:
    """Word -> word-pieces (each distinct word tokenized once) and text -> its pattern set."""

    def __init__(self, tokenizer) -> None:
        self.tokenize, self.pieces = tokenizer.tokenize, {}

    def of_word(self, word: str) -> list[str]:
        got = self.pieces.get(word)
        if got is None:
            got = self.pieces[word] = self._word_patterns(word)
        return got

    def _word_patterns(self, word: str) -> list[str]:
        if word.isdigit():
            return [NUMBERS]
        pieces = self.tokenize(word)
        out = [f"any:{p[2:]}" for p in pieces[1:] if p.startswith("##")]
        return out + ([f"pre:{pieces[0]}", f"initial:{pieces[0][0]}"] if len(pieces) > 1 else [])

    def of_text(self, text: str) -> set[str]:
        return {p for w in WORD.findall(text) for p in self.of_word(w)}

    def lead(self, word: str) -> str | None:
        """The first word-piece of a word of two or more pieces ("skin" of "skin ##ks"), else None."""
        return next((p[4:] for p in self.of_word(word) if p.startswith("pre:")), None)

    def words_with(self, text: str, pattern: str) -> list[str]:
        return [w for w in WORD.findall(text) if pattern in self.of_word(w)]


def word_families(words: set[str]) -> int:
    """How many word families the (lower-case) words make: words of one stem ("quasar", "quasars")
    are one, and so is a word whose stem holds another's of FAMILY_STEM_MIN letters or more
    ("formaldehyde", "acetaldehyde" and "aldehydes" hold "aldehyd")."""
    stems = sorted({stem(w) for w in words}, key=lambda s: (len(s), s))
    root = list(range(len(stems)))

    def find(i: int) -> int:
        while root[i] != i:
            i = root[i]
        return i

    for i, short in enumerate(stems):
        if len(short) >= FAMILY_STEM_MIN:
            for j in range(i + 1, len(stems)):
                if short in stems[j]:
                    root[find(j)] = find(i)
    return len({find(i) for i in range(len(stems))})


def pattern_label(pattern: str, words: list[str]) -> str:
    """What the feature responds to, as the label shows it."""
    if pattern == NUMBERS:
        return "numbers: " + ", ".join(w for w, _ in Counter(words).most_common(2))
    kind, piece = pattern.split(":", 1)
    if kind in ("pre", "initial"):
        return verdict_marked(TOKEN, f'"{piece}…"')
    ends = sum(w.lower().endswith(piece) for w in words) * 2 >= len(words)
    return verdict_marked(TOKEN, f'"…{piece}"' if ends else f'"…{piece}…"')


def _pattern_matrix(texts: list[str], patterns: Patterns) -> tuple[csr_matrix, list[str]]:
    """[n_texts, n_patterns] 0/1 and the pattern names."""
    index: dict[str, int] = {}
    indptr, cols = [0], []
    for t in texts:
        # sorted: a set's order follows the per-process string hash, and the columns' order breaks
        # ties between equally good patterns, so an unsorted set made labels differ between runs
        cols.extend(index.setdefault(p, len(index)) for p in sorted(patterns.of_text(t)))
        indptr.append(len(cols))
    m = csr_matrix((np.ones(len(cols), np.float32), cols, indptr), shape=(len(texts), len(index)))
    return m, list(index)


def candidates(
    doc_rows: np.ndarray, n_docs: np.ndarray, texts: np.ndarray, base_rows: np.ndarray, patterns: Patterns, gap: float
) -> dict[int, list[tuple[str, float, float]]]:
    """feature -> its candidates (step 1) as (pattern, share in its top texts, share in random
    texts), the widest gap first; doc_rows [F, m] top rows one per document (-1 padding)."""
    used = np.unique(doc_rows[doc_rows >= 0])
    rows = np.r_[used, base_rows]
    m, names = _pattern_matrix([str(t) for t in texts[rows]], patterns)
    base = np.asarray(m[len(used) :].mean(0)).ravel()
    f_idx, slot = np.nonzero(doc_rows >= 0)
    sel = csr_matrix(
        (np.ones(len(f_idx), np.float32), (f_idx, np.searchsorted(used, doc_rows[f_idx, slot]))),
        shape=(len(doc_rows), len(used)),
    )
    share = (sel @ m[: len(used)]).tocsr()
    share = share.multiply(1.0 / np.maximum(n_docs, 1)[:, None]).tocsr()
    out = {}
    for f in np.flatnonzero(n_docs >= MIN_FAMILIES):
        lo, hi = share.indptr[f], share.indptr[f + 1]
        cols, vals = share.indices[lo:hi], share.data[lo:hi]
        ok = vals - base[cols] >= gap
        # the widest gap first; among equal gaps the longer (more specific) pattern
        for c, v in sorted(zip(cols[ok], vals[ok]), key=lambda cv: (-(cv[1] - base[cv[0]]), -len(names[cv[0]]))):
            words = {w.lower() for r in doc_rows[f, : n_docs[f]] for w in patterns.words_with(str(texts[r]), names[c])}
            if word_families(words) >= MIN_FAMILIES:
                out.setdefault(int(f), []).append((names[c], float(v), float(base[c])))
    return out


def base_sample(train_rows: np.ndarray, seed: int) -> np.ndarray:
    """The random train texts that give a pattern's (or a whole word's) base rate."""
    return np.random.default_rng(seed).choice(train_rows, min(BASE_TEXTS, len(train_rows)), replace=False)


def masked_coherence(
    per_feature: dict[Hashable, list[tuple[int, str]]], texts: np.ndarray, embeddings, cache, mu: float, sigma: float
) -> tuple[dict, int]:
    """key (a feature, or a feature and the word masked) -> the coherence of its masked top texts,
    each given as (store row, masked text), and how many texts that embedded now (0 on a warm
    cache). A text the mask left as it was (it holds none of the words: only its spacing differs,
    which the tokenizer ignores) is the store's own row, as coherence reads it; the others are
    embedded by the store's model through the phrase cache, in one batch. On the default run a
    quarter of the masked texts are left whole, and embedding them again was a quarter of a first
    labelling's cost."""
    if not per_feature:
        return {}, 0
    before = cache.n_embedded
    rows = np.array([r for ps in per_feature.values() for r, _ in ps], dtype=np.int64)
    masked_texts = [t for ps in per_feature.values() for _, t in ps]
    whole = np.array([t == single_spaced(str(texts[r])) for r, t in zip(rows, masked_texts)], dtype=bool)
    emb = np.empty((len(rows), embeddings.shape[1]), dtype=np.float32)
    if whole.any():
        emb[whole] = unit_vectors(embeddings[rows[whole]])
    if not whole.all():
        emb[~whole] = unit_vectors(cache.get([t for t, w in zip(masked_texts, whole) if not w]))
    start, scores = 0, {}
    for f, ps in per_feature.items():
        scores[f] = (mean_pairwise_cosine(emb[start : start + len(ps)]) - mu) / sigma
        start += len(ps)
    return scores, cache.n_embedded - before


def single_spaced(text: str) -> str:
    """The text with each run of white space one space, none at its ends: what a mask (`masked`,
    word_features.without_word) leaves where it deleted words, and so what `masked_coherence` compares
    a masked text with to find the ones it left whole. One function for both, or a change to one
    would embed every whole text again (or read a changed one from the store)."""
    return " ".join(text.split())


def masked(text: str, pats: set[str], patterns: Patterns) -> str:
    """The text without the words that carry any of the patterns."""
    return single_spaced(WORD.sub(lambda w: "" if pats.intersection(patterns.of_word(w.group())) else w.group(), text))


def token_features(
    doc_rows: np.ndarray,
    n_docs: np.ndarray,
    coherence: np.ndarray,
    texts: np.ndarray,
    embeddings,
    train_rows: np.ndarray,
    tokenizer,
    cache,
    mu: float,
    sigma: float,
    coherence_min: float,
    gap: float,
    seed: int = 0,
    masked_texts: int = MASKED_TEXTS,
) -> TokenFeatures:
    """Steps 1 and 2 (module docstring). doc_rows/n_docs: coherence's top rows one per document;
    coherence: its scores and baseline (mu, sigma); texts, embeddings: the store's; cache: the
    store model's phrase cache."""
    F = len(doc_rows)
    out = TokenFeatures(np.zeros(F, bool), np.asarray(coherence, np.float64).copy(), [""] * F, [""] * F, 0)
    patterns = Patterns(tokenizer)
    base_rows = base_sample(train_rows, seed)
    found = candidates(doc_rows, n_docs, texts, base_rows, patterns, gap)
    if not found:
        return out
    # A candidate already below coherence_min shares the pattern and, even with it, no more than
    # random texts: a token feature without re-embedding (a third of the candidates on the default
    # run, and the step's cost is embedding the masked texts).
    tested = [f for f in found if not out.coherence[f] < coherence_min]
    # all of a feature's candidates at once: "cy…" of Cyprinidae and Cyrene may also be "c…"
    per_feature = {
        f: [
            (r, masked(str(texts[r]), {p for p, _, _ in found[f]}, patterns))
            for r in doc_rows[f, : min(n_docs[f], masked_texts)]
        ]
        for f in tested
    }
    scores, out.n_embedded = masked_coherence(per_feature, texts, embeddings, cache, mu, sigma)
    for f, cands in found.items():
        widest = cands[0][1] - cands[0][2]
        pattern, share, base = max(
            (c for c in cands if c[1] - c[2] >= widest - LABEL_GAP_SLACK), key=lambda c: len(c[0].partition(":")[2])
        )
        score = scores.get(f, out.coherence[f])
        out.coherence[f] = min(out.coherence[f], score)
        out.is_token[f] = score < coherence_min
        words = [w for r in doc_rows[f, : n_docs[f]] for w in patterns.words_with(str(texts[r]), pattern)]
        out.labels[f] = pattern_label(pattern, words)
        out.reasons[f] = f"{out.labels[f]} in {share:.0%} of its top texts against {base:.1%} of random texts; " + (
            f"without it their coherence is {score:.2f}"
            if f in scores
            else f"even with it their coherence is only {score:.2f}"
        )
    return out
