"""A head term must fit the texts it names: the vocabulary's nearest phrase to texts
that share no concept ("frankenstein" over Watsons, Kant and Frank... words, from a blind reading
of the default run) sits below `concept_support_min`, and the feature is mixed; a concept its texts
are about ("france") sits above it.

Planted top-text lists on the real 600-sentence store (tests/conftest.py), embedded with the
packaged MiniLM, scored by the labelling's own function."""

from __future__ import annotations

import numpy as np

from sae_lightning.labels.naming.concept import concept_fit, concept_support
from sae_lightning.labels.naming.source_documents import first_per_document
from sae_lightning.schemas.labeling import LabelingConfig

from .planted_texts import with_planted
from .test_word_features import FRANCE_TEXTS

# The misleading head term of the blind reading, over texts close to it only in a word or a name.
NO_CONCEPT_TEXTS = [
    "Frankenstein tells the story of a young scientist who creates a creature in an experiment.",
    "Watson is the companion of the detective in the stories of Arthur Conan Doyle.",
    "Critique of Pure Reason is a book by the German philosopher Immanuel Kant.",
    "James Dewey Watson was an American molecular biologist, geneticist, and zoologist.",
    "John Broadus Watson was an American psychologist who popularized behaviorism.",
    "Rosalind Franklin would have been awarded a Nobel Prize in Chemistry, Watson believed.",
    "His ideas were articulated in articles published under the pseudonym Frank Talk.",
    "A monster is a type of imaginary creature found in literature and folklore.",
    "Benjamin Franklin was one of the Founding Fathers of the United States.",
    "Frankfurt is the largest city of the German state of Hesse.",
    "Emma Watson is an English actress.",
    "Kant argued that space and time are forms of intuition.",
]


def test_a_head_term_its_texts_do_not_share_is_below_the_floor_and_one_they_do_is_above(small_store):
    model, cache, texts, X, codes, n = with_planted(small_store, FRANCE_TEXTS + NO_CONCEPT_TEXTS)
    top = (n + np.arange(24)).reshape(2, 12)
    cfg = LabelingConfig()
    support = concept_support(
        concept_fit(cache.get(["france", "frankenstein"]), first_per_document(top, codes), X, np.arange(n), cfg.seed)
    )
    assert support[0] >= cfg.concept_support_min > support[1], support
    # the same texts named by a phrase of none of them fit it worse than their own subject
    assert concept_support(concept_fit(cache.get(["volcano"]), top[:1], X, np.arange(n), cfg.seed))[0] < support[0]
