"""Which candidate phrases a text holds: n-grams of ADJACENT content words.

sklearn's CountVectorizer drops stop words first and then forms n-grams of what is left, so
"Its hymns are known for ..." yields the bigram "hymns known" and "Ulaanbaatar is the capital"
yields "ulaanbaatar capital": phrases no text contains. Here a stop word, a filler or a
punctuation mark ends a run of words, and n-grams are formed inside runs only, so every
candidate phrase occurs verbatim (up to case) in the texts it is counted in.

Fillers are the words of encyclopedic prose that glue a subject to its description ("known",
"called", "include", ...): not stop words for sklearn, never a keyword on their own, and never
part of one. They join the stop words when stop_words is "english" (a user's own list is used
as given). Tokens are sklearn's default (two or more word characters, lower-cased), so a phrase
is spelled as the CountVectorizer it replaces would spell it.
"""

from __future__ import annotations

import re
from functools import cache

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

FILLER_WORDS = frozenset(
    """
known called named include includes including included consist consists consisting contain contains
containing use used uses using refer refers referred referring consider considered regard regarded
describe described term terms word words example examples type types kind kinds form forms
usually commonly generally typically especially particularly largely mainly mostly widely often
various different notable famous major main important common like according later
""".split()
)
TOKEN = re.compile(r"(?u)\b\w\w+\b")  # sklearn's default token_pattern
BREAK = re.compile(r"[^\w\s'’-]+")  # punctuation ends a phrase ("Paris, France" is two phrases)


def stop_set(stop_words: str | list[str] | None) -> frozenset[str]:
    if stop_words is None:
        return frozenset()
    if stop_words == "english":
        return ENGLISH_STOP_WORDS | FILLER_WORDS
    if isinstance(stop_words, str):
        raise ValueError(f"stop_words={stop_words!r}: only 'english', a list of words or None")
    return frozenset(w.lower() for w in stop_words)


class PhraseAnalyzer:
    """A CountVectorizer analyzer: text -> its n-grams (lo..hi words) of adjacent content words."""

    def __init__(self, ngram_range: tuple[int, int], stop_words: str | list[str] | None) -> None:
        self.lo, self.hi = int(ngram_range[0]), int(ngram_range[1])
        self.stop = stop_set(stop_words)

    def __call__(self, text: str) -> list[str]:
        out: list[str] = []
        for segment in BREAK.split(str(text).lower()):
            run: list[str] = []
            for tok in TOKEN.findall(segment) + [""]:  # "" flushes the last run
                if tok and tok not in self.stop:
                    run.append(tok)
                    continue
                for n in range(self.lo, min(self.hi, len(run)) + 1):
                    out.extend(" ".join(run[i : i + n]) for i in range(len(run) - n + 1))
                run = []
        return out


def words_within(short: str, long: str) -> bool:
    """True when phrase `short` is a run of words inside phrase `long` ("san" in "san francisco")."""
    s, l_ = f" {short} ", f" {long} "
    return short != long and s in l_


@cache
def _stemmer():
    # imported here: only the labelling needs it (0.2 s of import), not every command that loads this module
    from nltk.stem.snowball import EnglishStemmer

    return EnglishStemmer()


@cache
def stem(word: str) -> str:
    """Snowball's English stem of a lower-case word: "apples" and "apple" give "appl"."""
    return _stemmer().stem(word)


def phrase_stems(phrase: str) -> tuple[str, ...]:
    """The stems of a phrase's words, in order: equal for "police officer" and "police officers"."""
    return tuple(stem(w) for w in phrase.split())


# A stem that begins another of at least this many letters makes the two one word family in a label:
# "histor" begins "historian" and "histori" (historical, historians, history), "mathemat" begins
# "mathematician". Shorter stems begin unrelated words ("art" of artery, "polic" of police and
# policy). Six also joins "differ" (difference) with "differenti" (differential): one of the six
# changed labels a blind reader preferred before the rule (docs/interpretation/reading.md, "Since r19").
FAMILY_PREFIX_MIN = 6


def _one_family(a: str, b: str) -> bool:
    """Two word stems of one family: equal, or one begins the other and has FAMILY_PREFIX_MIN letters."""
    short, long = sorted((a, b), key=len)
    return short == long or (len(short) >= FAMILY_PREFIX_MIN and long.startswith(short))


def holds(long: str, short: str) -> bool:
    """True when phrase `short` says nothing phrase `long` does not: each of its words is of one family
    with a word of a run inside `long` ("cluster" in "star clusters", "mathematics" in "mathematician",
    "police officer" in "police officers")."""
    s, l_ = phrase_stems(short), phrase_stems(long)
    return any(all(map(_one_family, s, l_[i : i + len(s)])) for i in range(len(l_) - len(s) + 1))


def same_stems(a: str, b: str) -> bool:
    """Two phrases that differ only in the forms of their words ("apple, apples", "police officer,
    police officers", "history, historians"): one keyword in two spellings, not two keywords."""
    return a != b and len(a.split()) == len(b.split()) and holds(a, b)


def repeats(keyword: str, concept: str) -> bool:
    """The keyword says nothing the concept does not: equal to it, or its words (in their forms)
    inside it ("theorem" of "theorems", "cluster" of "star clusters")."""
    return keyword == concept or holds(concept, keyword)
