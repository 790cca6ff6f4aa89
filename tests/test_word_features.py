"""Whole-word features: texts alike only because they share one word, in unrelated
senses, get the token verdict; texts on one concept that names itself do not.

Planted top-text lists on the real 600-sentence store (tests/conftest.py), embedded with the
packaged MiniLM; coherence and its masked version are the labelling's own functions."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from sae_lightning.labels.naming.phrases import stop_set
from sae_lightning.labels.scoring.coherence import feature_coherence
from sae_lightning.labels.scoring.token_features import Patterns
from sae_lightning.labels.scoring.verdict import verdicts
from sae_lightning.labels.scoring.word_features import (
    base_shares,
    shared_words,
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
# "record" in unrelated senses, in 8 of the 12 texts and "records" in 2 more ("recorded" and
# "recorder", other words, in the rest): a word and its plural count as one.
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


# "giant" and "giants" in unrelated senses, neither form in half of the texts: only counted as one
# word do they reach the share a shared word needs (the r6 top 50's "giant star — giants").
GIANT_TEXTS = [
    "A red giant is a luminous star in a late phase of its evolution.",
    "The giant panda is a bear species endemic to China.",
    "Goliath was a giant warrior slain by David in the Bible.",
    "The giant squid lives in the deep ocean.",
    "Jupiter is a gas giant, the largest planet of the Solar System.",
    "In Norse myth, frost giants live in Jotunheim.",
    "The New York Giants are a professional American football team.",
    "Tech giants such as Apple dominate the stock market.",
    "The San Francisco Giants won the World Series in 2010.",
    "Gentle giants: elephants are the largest land animals.",
    "Gigantism causes excessive growth in children.",
    "A colossal statue stood at the harbour of Rhodes.",
]
# Twelve texts on volcanoes, the word in one form or the other: one concept that names itself.
VOLCANO_TEXTS = [
    "A volcano is a rupture in the crust through which lava and gases escape.",
    "Volcanoes erupt when magma rises from the mantle to the surface.",
    "Mount Etna is an active volcano on the east coast of Sicily.",
    "Iceland has many volcanoes along the Mid-Atlantic Ridge.",
    "A shield volcano is built by fluid lava flows, like Mauna Loa.",
    "The Ring of Fire holds most of the world's active volcanoes.",
    "Vesuvius is the volcano that buried Pompeii in 79 AD.",
    "Ash clouds from volcanoes can ground aircraft for days.",
    "A dormant volcano has not erupted for a long time but may again.",
    "Hawaii's volcanoes formed over a hotspot in the Pacific plate.",
    "Krakatoa's eruption in 1883 was one of the deadliest in history.",
    "Pyroclastic flows race down the slopes of an erupting mountain.",
]


# "bay" leading unrelated words in the model's tokenizer (bay ##esian, bay ##eux, bay ##one ##t ...),
# the word itself in three of the twelve: only with the words it leads is it in half of them.
BAY_TEXTS = [
    "A bay is a recessed, coastal body of water that joins a larger main body of water.",
    "Bayesian inference updates the probability of a hypothesis as more evidence arrives.",
    "The Bayeux Tapestry depicts the Norman conquest of England in 1066.",
    "A bayonet is a knife fixed to the muzzle of a rifle.",
    "Bayeux is a commune in Normandy known for its medieval cathedral.",
    "The Bay of Bengal is the largest bay in the world.",
    "Bayesian networks represent random variables and their conditional dependencies.",
    "Bayreuth hosts an annual festival of the operas of Richard Wagner.",
    "The Baywatch theme song topped the charts in Germany.",
    "Baywatch was an American action drama television series about lifeguards.",
    "Bays along the coast of Maine shelter small fishing harbours.",
    "Thomas Bayes was an English statistician, philosopher and minister.",
]
# Twelve texts on working wood, the word leading most of its compounds (wood ##working, wood ##cut):
# one concept, which its texts share without the word.
WOOD_TEXTS = [
    "Woodworking is the skill of making furniture and other items from wood.",
    "Woodcarving is a form of working wood with a knife or a chisel.",
    "Woodcut is a relief printing technique in which an image is carved into a block of wood.",
    "Oak is a hardwood prized for furniture, flooring and barrels.",
    "Timber is wood processed into beams and planks for building.",
    "Woodturning shapes wood on a lathe into bowls, spindles and table legs.",
    "Pine is a softwood used for construction, joinery and cabinets.",
    "Woodworkers use saws, planes and chisels to shape timber.",
    "Plywood is made of thin layers of wood veneer glued together.",
    "Wood is seasoned by drying to reduce its moisture before it is worked.",
    "Carpenters join wooden beams with mortise and tenon joints.",
    "Marquetry applies pieces of wood veneer to a surface to form decorative pictures.",
]


@pytest.fixture(scope="module")
def planted(small_store):
    """The store's texts and embeddings plus the planted lists, one feature's top texts each (each
    text its own document)."""
    planted = BROWN_TEXTS + FRANCE_TEXTS + RECORD_TEXTS + GIANT_TEXTS + VOLCANO_TEXTS + BAY_TEXTS + WOOD_TEXTS
    model, cache, texts, X, codes, n = with_planted(small_store, planted)
    top = (n + np.arange(len(planted))).reshape(-1, 12)
    return cache, texts, X, codes, top, np.arange(n), model.tokenizer


def test_one_word_in_unrelated_senses_is_a_token_feature_and_a_self_named_concept_is_not(planted):
    cache, texts, X, codes, top, train_rows, tokenizer = planted
    cfg = LabelingConfig()
    coh = feature_coherence(top[:3], X, train_rows, codes, cfg.coherence_min_docs, cfg.coherence_pairs, cfg.seed)
    # both look coherent to the model: the brown texts because they share the word
    assert (coh.score >= cfg.coherence_min).all(), coh.score
    label = partial(
        word_features,
        coh.doc_rows,
        coh.n_docs,
        np.ones(3, bool),
        texts,
        X,
        train_rows,
        cache,
        stop_set("english"),
        coh.baseline_mean,
        coh.baseline_std,
        cfg.token_share_gap,
        cfg.seed,
        tokenizer,
    )
    got = label()
    assert got.is_token.tolist() == [True, False, True], (got.coherence, coh.score)
    assert got.labels == ['token: "brown"', "", 'token: "record"'] and "without it their coherence is" in got.reasons[0]
    assert "in 83% of its top texts" in got.reasons[2]
    # France without "France" is still about France, less alike than with it: the coherence the
    # feature's label_score takes (verdict.label_scores)
    assert got.coherence[0] < got.coherence[1] < coh.score[1]
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
    assert shared_words(["The brown bear.", "Brown sugar is sweet.", "A red car."], stop, 1) == [("brown", 2 / 3)]
    assert shared_words(["The 1924 games", "In 1924 the"], stop, 1)[0][0] == "games"  # numbers and stop words never
    assert without_word("Brown sugar, brownies and brown rice.", "brown") == "sugar, brownies and rice."


def test_a_word_and_its_plural_count_as_one_and_are_masked_together():
    stop = stop_set("english")
    texts = ["A giant squid.", "Red giants are stars.", "The giants of Norse myth.", "A small cat."]
    assert shared_words(texts, stop) == [("giant", 0.75), ("cat", 0.25)]
    assert shared_words(["Ash trees.", "Volcanic ashes.", "Ash Wednesday."], stop)[0] == ("ash", 1.0)
    # a plural without its singular stays itself, and "glass" is no plural of "glas"
    assert shared_words(["Glass beads.", "Stained glass."], stop)[0] == ("glass", 1.0)
    assert without_word("Giants and a giant, gigantic.", "giant") == "and a , gigantic."


def test_a_random_text_counts_once_for_a_word_whatever_forms_it_holds():
    """The word's share among random texts, which a feature's share must exceed by the gap: a text
    holding "giant" and "giants" is one text holding the word, not two."""
    texts = ["a giant among giants", "the giant", "giants of industry", "a dwarf", "ashes to ashes", "an ash tree"]
    shares = base_shares(texts, {"giant", "ash"})
    assert shares == {"giant": pytest.approx(3 / 6), "ash": pytest.approx(2 / 6)}


def test_a_word_in_several_senses_across_its_forms_is_a_token_feature(planted):
    cache, texts, X, codes, top, train_rows, tokenizer = planted
    cfg = LabelingConfig()
    coh = feature_coherence(top[3:5], X, train_rows, codes, cfg.coherence_min_docs, cfg.coherence_pairs, cfg.seed)
    args = (coh.doc_rows, coh.n_docs, np.ones(2, bool), texts, X, train_rows, cache, stop_set("english"))
    got = word_features(*args, coh.baseline_mean, coh.baseline_std, cfg.token_share_gap, cfg.seed, tokenizer)
    # neither "giant" nor "giants" alone is in half of the texts; together in 10 of 12
    assert got.is_token.tolist() == [True, False], (got.coherence, coh.score)
    assert got.labels[0] == 'token: "giant"' and "in 83% of its top texts" in got.reasons[0]
    # volcanoes without "volcano"/"volcanoes" are still about lava and eruptions
    assert got.coherence[1] > got.coherence[0]


def test_a_word_leading_unrelated_words_in_the_tokenizer_is_a_token_feature(planted):
    """ "bay" in three of twelve texts, and leading "Bayesian", "Bayeux", "bayonet" in the rest: the
    model reads the piece in all of them. Texts on working wood keep their concept without "wood"
    and the compounds it leads (woodworking, woodcut)."""
    cache, texts, X, codes, top, train_rows, tokenizer = planted
    cfg = LabelingConfig()
    coh = feature_coherence(top[5:7], X, train_rows, codes, cfg.coherence_min_docs, cfg.coherence_pairs, cfg.seed)
    args = (coh.doc_rows, coh.n_docs, np.ones(2, bool), texts, X, train_rows, cache, stop_set("english"))
    rest = (coh.baseline_mean, coh.baseline_std, cfg.token_share_gap, cfg.seed)
    got = word_features(*args, *rest, tokenizer)
    assert got.is_token.tolist() == [True, False], (got.coherence, coh.score)
    assert got.labels[0] == 'token: "bay…"' and "in 100% of its top texts" in got.reasons[0]
    assert got.coherence[1] >= cfg.coherence_min, got.coherence  # wood stays interpretable, not only not token
    # by the word and its plural alone, "bay" is in a quarter of the texts: not tested, not caught
    plain = word_features(*args, *rest)
    assert not plain.is_token[0] and np.isnan(plain.coherence[0])


def test_a_word_leads_only_the_words_whose_first_piece_it_is(planted):
    *_, tokenizer = planted
    lead = Patterns(tokenizer).lead
    stop = stop_set("english")
    texts = ["Skinks are lizards.", "Skin cancer.", "The skin of a drum.", "Skiing in the Alps."]
    assert shared_words(texts, stop, 1, lead) == [("skin", 0.75)]  # skin ##ks; "skiing" is not skin's
    assert shared_words(texts, stop, 1) == [("skin", 0.5)]
    assert without_word("Skinks, skins and skiing.", "skin", lead) == ", and skiing."
    # a piece leads a word only where the piece is a word the texts hold ("bay" of Bayes, not "pa" of Paris)
    assert base_shares(["Bayes and Bayeux.", "A bay.", "Paris."], {"bay"}, lead) == {"bay": pytest.approx(2 / 3)}
