"""Token features: texts alike only because they share a word-piece get their own verdict.

Planted top-text lists on the real 600-sentence store (tests/conftest.py), embedded with the
packaged MiniLM and tokenized with its own tokenizer; coherence and its masked version are the
labelling's own functions."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import partial

import numpy as np
import pytest

from sae_lightning.labels.naming.source_documents import first_per_document
from sae_lightning.labels.scoring.coherence import feature_coherence, mean_pairwise_cosine
from sae_lightning.labels.scoring.scoring_sets import unit_vectors
from sae_lightning.labels.scoring.token_features import (
    Patterns,
    masked,
    masked_coherence,
    pattern_label,
    single_spaced,
    token_features,
    word_families,
)
from sae_lightning.labels.scoring.verdict import verdicts
from sae_lightning.labels.scoring.word_features import without_word
from sae_lightning.run_schema import INTERPRETABLE, TOKEN
from sae_lightning.schemas.labeling import LabelingConfig

from .planted_texts import with_planted

# Subjects that share only their leading word-pieces "x ##yl…", in short sentences: MiniLM embeds
# them alike (coherence ~3) for the shared pieces alone.
XY_TEXTS = [
    "Xylophones are played with mallets in an orchestra.",
    "Xylitol is a sweetener used in chewing gum.",
    "Xylella is a bacterium that infects olive trees.",
    "Xylenes are solvents in the paint industry.",
    "Xylocopa are large bees that nest in dead branches.",
    "Xylose is absorbed in the small intestine.",
    "Xylography was an early printing technique.",
    "Xylazine is a sedative used by veterinarians.",
]
# Ten subjects that share only their leading word-piece "cr" (as the default run's CRT, Cronkite,
# crochet, Cruyff feature): a craft, a journalist, an animal, a footballer, an island, a pastry ...
CR_TEXTS = [
    "Crochet is a process of creating textiles by using a hook to interlock loops of yarn.",
    "Cronkite was an American broadcast journalist who anchored the evening news for two decades.",
    "Crayfish are freshwater crustaceans belonging to the clade Astacidea.",
    "Cruyff was a Dutch professional football player and coach.",
    "Crete is the largest and most populous of the Greek islands.",
    "Croissants are buttery, flaky pastries of Austrian origin.",
    "Cryptography is the practice and study of techniques for secure communication.",
    "Crimea is a peninsula on the northern coast of the Black Sea.",
    "Cricket is a bat-and-ball game played between two teams of eleven players.",
    "Cremation is a method of final disposition of a dead body through burning.",
]

# Texts on one concept named by one word family, whose words share the pieces "al ##deh ##yde" (as
# the default run's aldehyde feature, labelled 'token: "…deh…"' when words were counted, not families)
ALDEHYDE_TEXTS = [
    "Formaldehyde is a pungent colourless gas used to make resins.",
    "Aldehydes are organic compounds with a carbonyl group bonded to hydrogen.",
    "Acetaldehyde is formed in the liver when ethanol is broken down.",
    "An aldehyde can be oxidised to a carboxylic acid.",
    "Formaldehyde solution preserves tissue samples in laboratories.",
    "Aldehydes give many fruits and perfumes their smell.",
    "Acetaldehyde occurs naturally in coffee, bread and ripe fruit.",
    "The aldehyde group is also called a formyl group.",
]


@pytest.fixture(scope="module")
def planted(small_store):
    """The store's texts and embeddings plus XY_TEXTS, CR_TEXTS and ALDEHYDE_TEXTS (each its own
    document), and five top-text lists: the "x ##yl" texts, the "cr" texts, 12 Mathematics texts of
    12 articles nearest their topic's centroid, 12 texts of 12 random articles, the aldehyde texts."""
    model, cache, texts, X, codes, n = with_planted(small_store, XY_TEXTS + CR_TEXTS + ALDEHYDE_TEXTS)
    meta = small_store.metadata()
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    math = np.flatnonzero(meta["domain"].to_numpy() == "Mathematics")
    ranked = first_per_document(math[np.argsort(-(unit[math] @ unit[math].mean(0)))][None], codes)[0]
    rng = np.random.default_rng(0)
    mixture = first_per_document(rng.permutation(n)[None], codes)[0]
    top = np.full((5, 12), -1)
    top[0, : len(XY_TEXTS)] = n + np.arange(len(XY_TEXTS))
    top[1, : len(CR_TEXTS)] = n + len(XY_TEXTS) + np.arange(len(CR_TEXTS))
    top[2], top[3] = ranked[:12], mixture[:12]
    top[4, : len(ALDEHYDE_TEXTS)] = n + len(XY_TEXTS) + len(CR_TEXTS) + np.arange(len(ALDEHYDE_TEXTS))
    return model, cache, texts, X, codes, top, np.arange(n)


def test_texts_sharing_only_a_leading_subword_get_the_token_verdict(planted):
    model, cache, texts, X, codes, top, train_rows = planted
    cfg = LabelingConfig()
    coh = feature_coherence(top, X, train_rows, codes, cfg.coherence_min_docs, cfg.coherence_pairs, cfg.seed)
    label = partial(
        token_features,
        coh.doc_rows,
        coh.n_docs,
        coh.score,
        texts,
        X,
        train_rows,
        model.tokenizer,
        cache,
        coh.baseline_mean,
        coh.baseline_std,
        cfg.coherence_min,
        cfg.token_share_gap,
        cfg.seed,
    )
    got = label()
    assert got.is_token.tolist() == [True, True, False, False, False], (got.labels, got.coherence, coh.score)
    # "x ##yl…" texts look coherent to the model; with the x-words deleted they share nothing
    assert coh.score[0] >= cfg.coherence_min > got.coherence[0] and got.labels[0] == 'token: "x…"'
    assert "without it their coherence is" in got.reasons[0]
    # the "cr" texts are not alike even with the piece (Cricket, Crete and Crimea are whole pieces:
    # the other 6 of 10 begin with "cr"), so they are a token feature without re-embedding
    assert coh.score[1] < cfg.coherence_min and got.coherence[1] == coh.score[1]
    assert got.labels[1] == 'token: "cr…"' and got.reasons[1].startswith('token: "cr…" in 60% of its top texts')
    assert got.coherence[2] >= cfg.coherence_min  # a topic over many articles stays coherent
    # one word family (aldehyde, aldehydes, formaldehyde, acetaldehyde) is no sub-word pattern: its
    # pieces "…deh…", "…yde…" are no candidate, so nothing is masked and the coherence stays
    assert got.labels[4] == got.reasons[4] == "" and got.coherence[4] == coh.score[4] >= cfg.coherence_min
    verdict = verdicts(np.zeros(5, bool), got.coherence, np.ones(5, bool), cfg.coherence_min, got.is_token)
    assert verdict.tolist() == [TOKEN, TOKEN, INTERPRETABLE, verdict[3], INTERPRETABLE]
    # a relabel embeds nothing: the masked texts are in the phrase cache
    again = label()
    assert again.n_embedded == 0 and again.labels == got.labels and np.allclose(again.coherence, got.coherence)


def test_a_text_the_mask_leaves_whole_is_the_stores_own_row(planted):
    """Only the texts a mask changed are embedded again: one that holds none of the words (its
    spacing aside) is read from the store, as coherence reads it."""
    model, cache, texts, X, codes, top, train_rows = planted
    rows = top[2, :6]
    # what each mask makes of a text that holds none of its words
    whole = [(r, masked(str(texts[r]), {"pre:zzzq"}, Patterns(model.tokenizer))) for r in rows[:3]]
    whole += [(r, without_word(str(texts[r]), "zzzq")) for r in rows[3:]]
    got, n = masked_coherence({"whole": whole}, texts, X, cache, 0.1, 0.2)
    assert n == 0 and got["whole"] == (mean_pairwise_cosine(unit_vectors(X[rows])) - 0.1) / 0.2
    changed = whole[:5] + [(rows[5], "The masked text of test_a_text_the_mask_leaves_whole.")]
    got, n = masked_coherence({"changed": changed}, texts, X, cache, 0.1, 0.2)
    assert n == 1 and got["changed"] != (mean_pairwise_cosine(unit_vectors(X[rows])) - 0.1) / 0.2


def test_a_mask_leaves_one_space_where_it_deleted_words():
    """Both masks and masked_coherence's test for a text left whole share one normalisation."""
    text = "  Impressionism,\tcubism  and\n surrealism. "
    assert single_spaced(text) == "Impressionism, cubism and surrealism."
    assert without_word(text, "cubism") == "Impressionism, and surrealism."
    assert without_word(text, "zzzq") == single_spaced(text)


def test_patterns_come_from_the_embedders_tokenizer(planted):
    model = planted[0]
    p = Patterns(model.tokenizer)
    assert {"pre:cr", "initial:c", "any:oche"} <= set(p.of_word("crochet")) and p.of_word("1937") == ["numbers"]
    assert p.of_word("the") == p.of_word("magnetic") == []  # a whole word is a keyword, not a sub-word pattern
    assert pattern_label("numbers", ["1924", "1937", "1924"]) == "numbers: 1924, 1937"
    assert pattern_label("any:ism", ["impressionism", "nihilism"]) == 'token: "…ism"'


def test_words_of_one_family_count_once():
    """A word and the words sharing its stem, or holding it, are one family (Snowball stems); a
    leading piece shared by unrelated words is not."""
    assert word_families({"aldehydes", "formaldehyde", "acetaldehyde"}) == 1
    assert word_families({"quasar", "quasars", "maasai"}) == word_families({"tick", "ticks", "ticked", "ganges"}) == 2
    assert word_families({"crt", "cronkite", "crochet", "cruyff"}) == 4
    assert word_families({"impressionism", "cubism", "surrealism"}) == 3
    # short stems are leading pieces, not families: Kali of Kaliningrad and Kalidasa, gang of ganglia
    assert word_families({"kali", "kaliningrad", "kalidasa"}) == word_families({"ganges", "ganglia", "gangrene"}) == 3


def test_pattern_columns_do_not_follow_the_string_hash():
    """Ties between equally good patterns are broken by column order: that order must be the same in
    every process (it followed a set's iteration, so a relabel could name another pattern)."""
    code = (
        "from transformers import AutoTokenizer; from sae_lightning.data.embed import resolve_model, DEFAULT_MODEL; "
        "from sae_lightning.labels.scoring.token_features import Patterns, _pattern_matrix; "
        "p = Patterns(AutoTokenizer.from_pretrained(resolve_model(DEFAULT_MODEL))); "
        "print(_pattern_matrix(['Cruyff crocheted chrysanthemums in 1937', 'Enugu, Enlil and enthalpy'], p)[1])"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PYTHONHASHSEED": seed, "HF_HUB_OFFLINE": "1"},
        )
        for seed in ("1", "2")
    ]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr[-2000:]
    assert runs[0].stdout == runs[1].stdout and "pre:" in runs[0].stdout
