"""Keywords the evidence supports, a name for the concept, and the two method baselines.

Planted cases on the real 600-sentence store (tests/conftest.py), the packaged MiniLM and real KeyBERT."""

from __future__ import annotations

import numpy as np
import pytest
from keybert import KeyBERT
from scipy.sparse import csr_matrix

from sae_lightning.data.datamodule import split_indices
from sae_lightning.data.embed import load_model
from sae_lightning.labels import LabelingConfig, interpret_sae
from sae_lightning.labels.naming.bertopic_baseline import (
    BERTOPIC_CANDIDATES,
    BERTOPIC_REPR_DOCS,
    bertopic_labels,
    class_tfidf,
)
from sae_lightning.labels.naming.candidates import PrecountedVectorizer, count_train_texts, doc_term_matrix
from sae_lightning.labels.naming.concept import without_concept
from sae_lightning.labels.naming.evidence_rerank import rerank
from sae_lightning.labels.naming.label_embedding import label_text
from sae_lightning.labels.naming.phrases import FILLER_WORDS, PhraseAnalyzer
from sae_lightning.labels.naming.seed_baseline import merge_keywords, per_text_keywords
from sae_lightning.labels.naming.source_documents import document_codes
from tests.test_interpret import PLANTED
from tests.test_label_trust import math_feature, store_parts  # noqa: F401 (fixtures)


def test_phrases_are_adjacent_words_never_glued_to_a_filler():
    grams = PhraseAnalyzer((1, 2), "english")(
        "Its hymns are known for their melodies. Ulaanbaatar is the capital, and San Francisco a city."
    )
    assert "hymns known" not in grams and "ulaanbaatar capital" not in grams and "known" not in grams
    assert {"hymns", "melodies", "ulaanbaatar", "capital", "san francisco", "san", "francisco"} <= set(grams)
    assert "capital san" not in grams  # a comma ends a phrase
    assert {"known", "called", "include"} <= FILLER_WORDS


def _shortlist(words, cosines):
    return [(w, c) for w, c in zip(words, cosines)]


def test_contained_keywords_are_deduplicated_and_weak_ones_left_out():
    words = np.array(["san", "francisco", "san francisco", "parallel", "parallel computing", "bridge"])
    emb = np.eye(len(words), dtype=np.float32)  # all unlike: only the containment rule can merge them
    evidence = csr_matrix(np.array([[3.0, 3.0, 3.0, 0, 0, 2.0], [0, 0, 0, 3.0, 2.0, 1.0]]))
    support = csr_matrix(np.array([[4.0, 4.0, 4.0, 0, 0, 3.0], [0, 0, 0, 5.0, 3.0, 2.0]]))
    lists = [
        _shortlist(["san", "francisco", "san francisco", "bridge"], [0.6, 0.55, 0.58, 0.3]),
        _shortlist(["parallel", "parallel computing", "bridge"], [0.5, 0.6, 0.1]),
    ]
    got = rerank(lists, evidence, words, emb, 3, 0.5, 0.3, support, 0.0)
    assert [k for k, _ in got[0]] == ["san francisco", "bridge"]  # "san" and "francisco" say less, as often
    picked = [k for k, _ in got[1]]
    assert not ({"parallel", "parallel computing"} <= set(picked))  # never one inside another
    # evidence decides the length: a weak second keyword is left out
    strong = rerank(lists[1:], evidence[1:], words, emb, 3, 0.5, 0.3, support[1:], 0.6)
    assert [k for k, _ in strong[0]] == [picked[0]] and len(picked) == 2 and "bridge" in picked


def test_two_forms_of_one_word_are_never_both_keywords():
    """Labels like "apples, apple" and "police officer, police officers" were 147 of the default
    run's: one keyword spelled twice. The more relevant form names it; a different word follows."""
    from sae_lightning.labels.naming.phrases import same_stems

    assert same_stems("apples", "apple") and same_stems("police officers", "police officer")
    assert not same_stems("apple", "apple") and not same_stems("apple", "apple pie")
    assert not same_stems("police", "policy") and not same_stems("arm", "army")  # other words, other stems
    # one family: a stem of six letters or more beginning the other's ("histor" of historian, histori)
    assert same_stems("history", "historians") and same_stems("historical", "history")
    assert same_stems("pakistan", "pakistani") and not same_stems("art", "artery")  # "art": too short
    words = np.array(["apple", "apples", "orchard", "police officer", "police officers", "patrol"])
    emb = np.eye(len(words), dtype=np.float32)  # all unlike: only the forms rule can keep one out
    evidence = csr_matrix(np.array([[3.0, 4.0, 2.0, 0, 0, 0], [0, 0, 0, 3.0, 3.0, 2.0]]))
    support = csr_matrix(np.array([[3.0, 4.0, 2.0, 0, 0, 0], [0, 0, 0, 3.0, 3.0, 2.0]]))
    lists = [
        _shortlist(["apple", "apples", "orchard"], [0.6, 0.59, 0.5]),
        _shortlist(["police officers", "police officer", "patrol"], [0.6, 0.6, 0.5]),
    ]
    got = [[k for k, _ in ks] for ks in rerank(lists, evidence, words, emb, 3, 0.5, 0.3, support, 0.0)]
    assert got[0] == ["apples", "orchard"]  # the form more of the top texts hold is the more relevant
    assert len(got[1]) == 2 and got[1][1] == "patrol" and got[1][0] in ("police officer", "police officers")


def test_a_keyword_of_one_article_is_never_a_candidate():
    """Three sentences of one article share "zanzibar"; two articles share "spice trade"."""
    texts = np.array(
        [
            "Zanzibar lies off the coast and traded in spice trade goods.",
            "Zanzibar had a sultan.",
            "Zanzibar town grew.",
            "The spice trade reached Venice.",
            "Lisbon grew rich on the spice trade.",
            "Cats purr.",
        ]
    )
    ids = np.array(["Zanzibar#0", "Zanzibar#1", "Zanzibar#2", "Venice#0", "Lisbon#0", "Cat#0"])
    cfg = LabelingConfig()
    counts = count_train_texts(texts, np.arange(6), cfg)
    terms = doc_term_matrix(np.array([[0, 1, 2, 3, 4]]), counts, cfg, document_codes(ids))
    kept = set(terms.words[terms.matrix[0].indices])
    assert "spice trade" in kept and "zanzibar" not in kept and "grew" in kept


def test_seed_baseline_picks_what_keybert_picks_per_text(small_store):
    model = load_model(small_store.model_name)
    texts = small_store.metadata()["text"].to_numpy()[:6]
    cfg = LabelingConfig()
    counts = count_train_texts(texts, np.arange(6), cfg)
    words = counts.words
    word_emb = model.encode(list(words))
    doc_emb = np.asarray(small_store.embeddings[:6], dtype=np.float32)
    present = counts.counts.copy()
    present.data[:] = 1
    cols, sims = per_text_keywords(present, doc_emb, word_emb, 5)
    vec = PrecountedVectorizer().set_counts(counts.counts, words)
    want = KeyBERT(model=model).extract_keywords(
        list(texts), vectorizer=vec, doc_embeddings=doc_emb, word_embeddings=word_emb, top_n=5
    )
    for c, s, kws in zip(cols, sims, want):
        assert [str(words[i]) for i in c] == [k for k, _ in kws]
        np.testing.assert_allclose(s, [v for _, v in kws], atol=1e-3)
    # merged over texts: mean similarity x log(1 + count); alike keywords are one
    unit = np.eye(3, dtype=np.float32)
    unit[2] = unit[1]  # word 2 is word 1 again
    got = merge_keywords(np.array([0, 1, 2, 1]), np.array([0.9, 0.5, 0.5, 0.5]), unit, 2)
    assert got == [1, 0]  # 3 x 0.5 x log 4 = 2.08 beats 0.9 x log 2 = 0.62


def test_class_tfidf_is_bertopics_formula():
    X = csr_matrix(np.array([[2.0, 0, 1], [0, 3.0, 1]]))
    got, idf = class_tfidf(X)
    avg = 7 / 2
    want_idf = np.log(1 + avg / np.array([2.0, 3.0, 2.0]))
    np.testing.assert_allclose(idf, want_idf)
    np.testing.assert_allclose(got.toarray(), np.array([[2 / 3, 0, 1 / 3], [0, 3 / 4, 1 / 4]]) * want_idf)


def test_keybert_inspired_equals_its_definition_feature_by_feature():
    """The vectorised baseline against BERTopic's steps written out per topic, on random counts."""
    rng = np.random.default_rng(0)
    T, V, d = 12, 30, 8
    counts = csr_matrix(rng.integers(0, 3, (T, V)) * (rng.random((T, V)) > 0.6))
    top = np.array([[0, 1, 2, 3, 4, 5], [6, 7, 8, -1, -1, -1], [9, 10, 11, 0, 1, -1], [2, 4, 6, 8, 10, -1]])
    classes = csr_matrix(np.stack([np.asarray(counts[r[r >= 0]].sum(0)).ravel() for r in top]))
    emb, wemb = rng.normal(size=(T, d)).astype(np.float32), rng.normal(size=(V, d)).astype(np.float32)
    words = np.array([f"w{i}" for i in range(V)])
    got = bertopic_labels(top, classes, counts, np.arange(T), emb, words, wemb, 3)
    ct, idf = class_tfidf(classes)
    ct, docs = ct.toarray(), counts.toarray() * idf

    def unit(x):
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    for f, r in enumerate(top):
        r = r[r >= 0]
        sim = np.array([docs[t] @ ct[f] / max(np.linalg.norm(docs[t]) * np.linalg.norm(ct[f]), 1e-12) for t in r])
        topic = unit(unit(emb[r[np.lexsort((r, -sim))][:BERTOPIC_REPR_DOCS]]).mean(0))
        nz = np.flatnonzero(ct[f])
        cand = nz[np.lexsort((nz, -ct[f][nz]))][:BERTOPIC_CANDIDATES]
        score = unit(wemb[cand]) @ topic
        assert got[f] == [words[w] for w in cand[np.lexsort((cand, -score))][:3]]


def test_a_label_never_repeats_its_concept():
    assert without_concept(["digestive", "stomach"], "digestive system") == ["stomach"]
    assert without_concept(["digestive"], "digestive system") == ["digestive"]
    assert label_text("digestive system", ["digestive", "stomach"]) == "digestive system — stomach"
    assert label_text("closely related", ["closely related"]) == "closely related"
    # the concept's own word in another form repeats it too: "theorems — theorem", "star clusters — cluster"
    assert label_text("theorems", ["theorem", "proof"]) == "theorems — proof"
    assert label_text("star clusters", ["cluster"]) == "star clusters"
    assert label_text("pakistani province", ["pakistan", "karachi"]) == "pakistani province — karachi"
    assert label_text("salmonella", ["salmonella enterica"]) == "salmonella — salmonella enterica"  # says more
    assert label_text("", ["a", "b"]) == "a, b"


@pytest.fixture(scope="module")
def spread_topic(math_feature, small_store):  # noqa: F811 (the imported fixture, by name)
    """test_label_trust's feature 0: the Mathematics texts nearest their topic's direction, one
    concept over many articles, no text naming it as such."""
    train_idx, val_idx = split_indices(len(small_store), 0.5, 0)
    df, _ = interpret_sae(math_feature, small_store, train_idx, val_idx, LabelingConfig())
    return df


def test_a_topic_over_many_articles_gets_a_head_term_that_names_it(spread_topic, small_store):
    row = spread_topic.loc[PLANTED]
    assert len({i.rsplit("#", 1)[0] for i in row["top_ids"]}) >= 10  # spread over many articles
    model = load_model(small_store.model_name)
    concept, topics = model.encode([row["concept"]]), model.encode(["mathematics", "history", "arts"])
    sims = (concept @ topics.T)[0] / np.linalg.norm(concept) / np.linalg.norm(topics, axis=1)
    assert sims.argmax() == 0 and sims[0] > 0.4, (row["concept"], sims)
    assert row["label"].startswith(f"{row['concept']} — ")
    # the baselines are scored by the same code, on the same sets
    for name in ("seed", "bertopic"):
        assert row[f"{name}_label"] and 0 <= row[f"{name}_auroc_hard"] <= 1 and 0 <= row[f"{name}_auroc"] <= 1
