"""Whole-word features (issue 21): texts alike only because they share one word, in unrelated
senses, get the token verdict; texts on one concept that names itself do not.

Planted top-text lists on the real 600-sentence store (tests/conftest.py), embedded with the
packaged MiniLM; coherence and its masked version are the labelling's own functions."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from sae_lightning.labels.naming.phrases import stop_set
from sae_lightning.labels.scoring.coherence import feature_coherence
from sae_lightning.labels.scoring.verdict import verdicts
from sae_lightning.labels.scoring.word_features import (
    shared_word,
    without_word,
    word_features,
)
from sae_lightning.run_schema import INTERPRETABLE, TOKEN
from sae_lightning.schemas.labeling import LabelingConfig

from .planted_texts import with_planted

# "brown" in twelve unrelated senses: a colour, an animal, people, a university, foods, a star ...
BROWN_TEXTS = [
    "Brown is a composite colour made by mixing red, yellow and black pigments.",
    "The brown bear is a large bear species found across Eurasia and North America.",
    "Gordon Brown served as Prime Minister of the United Kingdom from 2007 to 2010.",
    "Brown University is a private research university in Providence, Rhode Island.",
    "Brown rice is whole-grain rice with the inedible outer hull removed.",
    "A brown dwarf is a substellar object too small to fuse hydrogen in its core.",
    "Brown v. Board of Education was a landmark decision of the US Supreme Court.",
    "Brown sugar is a sucrose product with a distinctive colour due to molasses.",
    "James Brown was an American singer known as the Godfather of Soul.",
    "The brown trout is a European species of salmonid fish.",
    "Brown coal, or lignite, is a soft combustible sedimentary rock.",
    "Charlie Brown is the principal character of the comic strip Peanuts.",
]
# "record" in unrelated senses, in 8 of the 12 texts (its other forms in the rest): below the 3 of 4
# that a shared word once needed.
RECORD_TEXTS = [
    "The world record in the marathon.",
    "A vinyl record of jazz.",
    "The fossil record of birds.",
    "The hottest year on record.",
    "He has a criminal record.",
    "The team had a winning record.",
    "A record label in London.",
    "A medical record of a patient.",
    "The band recorded an album.",
    "Parish records of a village.",
    "A flight data recorder.",
    "Guinness World Records book.",
]
# Twelve texts on France, each naming it: one concept, named by one word.
FRANCE_TEXTS = [
    "France is a country in Western Europe whose capital is Paris.",
    "The French Revolution began in France in 1789 and abolished the monarchy.",
    "France is the most visited country in the world, with the Eiffel Tower and the Louvre.",
    "The official language of France is French, spoken by almost all of its people.",
    "France borders Belgium, Luxembourg, Germany, Switzerland, Italy, Monaco, Andorra and Spain.",
    "Napoleon Bonaparte became Emperor of France in 1804.",
    "France is a founding member of the European Union and uses the euro.",
    "Wine from Bordeaux and Burgundy has made France famous for its vineyards.",
    "The president of France is elected for a five-year term.",
    "Mainland France is divided into regions such as Brittany, Normandy and Provence.",
    "France was occupied by Germany during the Second World War until its liberation in 1944.",
    "The Tour de France is a cycling race held every July across France.",
]


@pytest.fixture(scope="module")
def planted(small_store):
    """The store's texts and embeddings plus both planted lists (each text its own document)."""
    _, cache, texts, X, codes, n = with_planted(small_store, BROWN_TEXTS + FRANCE_TEXTS + RECORD_TEXTS)
    top = (n + np.arange(36)).reshape(3, 12)
    return cache, texts, X, codes, top, np.arange(n)


def test_one_word_in_unrelated_senses_is_a_token_feature_and_a_self_named_concept_is_not(planted):
    cache, texts, X, codes, top, train_rows = planted
    cfg = LabelingConfig()
    coh = feature_coherence(top, X, train_rows, codes, cfg.coherence_min_docs, cfg.coherence_pairs, cfg.seed)
    # both look coherent to the model: the brown texts because they share the word
    assert (coh.score >= cfg.coherence_min).all(), coh.score
    label = partial(
        word_features,
        coh.doc_rows,
        coh.n_docs,
        np.ones(3, bool),
        texts,
        train_rows,
        cache,
        stop_set("english"),
        coh.baseline_mean,
        coh.baseline_std,
        cfg.token_share_gap,
        cfg.seed,
    )
    got = label()
    assert got.is_token.tolist() == [True, False, True], (got.coherence, coh.score)
    assert got.labels == ['token: "brown"', "", 'token: "record"'] and "without it their coherence is" in got.reasons[0]
    assert "in 67% of its top texts" in got.reasons[2]
    # France without "France" is still about France
    assert got.coherence[1] > got.coherence[0]
    verdict = verdicts(
        np.zeros(3, bool),
        np.where(got.is_token, got.coherence, coh.score),
        np.ones(3, bool),
        cfg.coherence_min,
        got.is_token,
    )
    assert verdict.tolist() == [TOKEN, INTERPRETABLE, TOKEN]
    # a relabel embeds nothing: the masked texts are in the phrase cache
    again = label()
    assert again.n_embedded == 0 and again.labels == got.labels


def test_the_shared_word_is_a_content_word_and_is_masked_whole():
    stop = stop_set("english")
    assert shared_word(["The brown bear.", "Brown sugar is sweet.", "A red car."], stop) == ("brown", 2 / 3)
    assert shared_word(["The 1924 games", "In 1924 the"], stop)[0] == "games"  # numbers and stop words never
    assert without_word("Brown sugar, brownies and brown rice.", "brown") == "sugar, brownies and rice."
