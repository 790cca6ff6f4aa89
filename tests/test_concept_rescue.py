"""A feature mixed by its coherence alone is interpretable where one name fits every text a reader
sees but one (verdict.named_verdicts), and token where that name is a word its texts share in
unrelated senses (word_features.py, run on such features after the rule).

Planted top-text lists on the real 600-sentence store (tests/conftest.py), embedded with the
packaged MiniLM, scored by the labelling's own functions: texts on wounds from surgery, war and
folk medicine share a concept; texts sharing the word "seal" (the animal, a wax seal, a seal of
approval) share only the word, which fits each of them as well."""

from __future__ import annotations

import numpy as np

from sae_lightning.labels.naming.concept import choose_concepts, concept_fit, concept_support, support_floor
from sae_lightning.labels.naming.phrases import stop_set
from sae_lightning.labels.naming.source_documents import first_per_document
from sae_lightning.labels.scoring.coherence import feature_coherence
from sae_lightning.labels.scoring.verdict import named_verdicts
from sae_lightning.labels.scoring.word_features import word_features
from sae_lightning.run_schema import INTERPRETABLE, MIXED, TOKEN
from sae_lightning.schemas.labeling import LabelingConfig

from .planted_texts import with_planted

WOUND_TEXTS = [
    "A wound is an injury in which the skin is torn, cut or punctured.",
    "Soldiers with battle wounds were carried back to the field hospitals.",
    "The surgeon cleaned the wound and closed it with stitches.",
    "Chronic wounds such as pressure ulcers heal slowly in elderly patients.",
    "Honey has been applied to wounds since antiquity to keep infection away.",
    "A gunshot wound can damage organs far from the point of entry.",
    "Bandages keep a wound clean while the tissue grows back.",
    "Deep wounds may leave a scar long after they heal.",
    "The knight died of his wounds three days after the battle.",
    "Wound healing passes through inflammation, proliferation and remodelling.",
]
SEAL_TEXTS = [
    "The harbour seal hauls out on sandbanks at low tide.",
    "The letter was closed with a red wax seal bearing the family crest.",
    "The product carries a seal of approval from the consumer association.",
    "Elephant seals dive deeper than almost any other mammal.",
    "The Great Seal of the Realm authenticated the king's documents.",
    "A rubber seal keeps water out of the pump's housing.",
    "The envelope's seal had been broken before it arrived.",
    "Seal hunting remains controversial in Canada and Norway.",
    "The treaty was signed and sealed in 1648.",
    "A vacuum seal keeps the coffee fresh for months.",
]
VOCABULARY = ["wounds", "injury", "battle", "hospital", "seal", "seals", "wax", "letters", "marine mammals"]


def test_the_rule_names_mixed_features_whose_name_fits_all_their_texts_but_one():
    support_min = LabelingConfig().concept_support_min
    was = np.array([MIXED, MIXED, MIXED, INTERPRETABLE, INTERPRETABLE, TOKEN])
    support = np.array([6.0, 6.0, 3.0, 3.0, 6.0, 9.0])
    floor = np.array([5.0, 2.0, 5.0, np.nan, 1.0, 9.0])  # NaN: fewer than three texts
    now = named_verdicts(was, support, floor, support_min)
    # fits all but one: named; fits some: still mixed; fits on average only where the floor is
    # not met (the mean can sit above the floor's one bad text); no name: mixed; token stays
    assert now.tolist() == [INTERPRETABLE, MIXED, MIXED, MIXED, INTERPRETABLE, TOKEN]
    assert was.tolist()[0] == MIXED  # the verdicts passed in are left as they were


def test_a_concept_and_a_shared_word_both_fit_their_texts_and_the_word_check_tells_them_apart(small_store):
    model, cache, texts, X, codes, n = with_planted(small_store, WOUND_TEXTS + SEAL_TEXTS)
    top = (n + np.arange(20)).reshape(2, 10)
    cfg = LabelingConfig()
    unit = X[top] / np.linalg.norm(X[top], axis=-1, keepdims=True)
    direction = unit.mean(1) / np.linalg.norm(unit.mean(1), axis=-1, keepdims=True)
    names, _ = choose_concepts(direction, np.zeros_like(direction), VOCABULARY, cache.get(VOCABULARY), 0.0)
    assert names == ["wounds", "seal"]
    fit = concept_fit(cache.get(names), first_per_document(top, codes), X, np.arange(n), cfg.seed)
    assert fit.shape == (2, 10) and not np.isnan(fit).any()
    # each name fits every text but one: the rule alone would call both interpretable ...
    assert (support_floor(fit) >= cfg.concept_support_min).all() and (concept_support(fit) >= support_floor(fit)).all()
    assert (np.sort(fit, 1)[:, 1] == support_floor(fit)).all()
    # ... and the whole-word check, masking the shared word, tells the word from the concept
    coh = feature_coherence(top, X, np.arange(n), codes, cfg.coherence_min_docs, cfg.coherence_pairs, cfg.seed)
    words = word_features(
        coh.doc_rows,
        coh.n_docs,
        np.ones(2, bool),
        texts,
        X,
        np.arange(n),
        cache,
        stop_set(cfg.stop_words),
        coh.baseline_mean,
        coh.baseline_std,
        cfg.token_share_gap,
        cfg.seed,
    )
    assert words.is_token.tolist() == [False, True] and words.labels[1] == 'token: "seal"'
    assert coh.score[1] < cfg.coherence_min  # the seal texts are mixed by coherence: the rule would name them


def test_fewer_than_three_texts_have_no_floor():
    fit = np.array([[5.0, 6.0, np.nan], [np.nan, np.nan, np.nan]])
    assert np.isnan(support_floor(fit)).all()
    np.testing.assert_allclose(concept_support(fit), [5.5, np.nan])
