"""Labels a researcher can trust: coherence, discriminating scores, the judge, numbers.

Everything runs on the real 600-sentence store (tests/conftest.py) with the packaged MiniLM."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from sae_lightning.data.datamodule import split_indices
from sae_lightning.data.embed import load_model, resolve_model
from sae_lightning.data.store import EmbeddingStore
from sae_lightning.errors import UserError
from sae_lightning.labels import LabelingConfig, interpret_sae
from sae_lightning.labels.naming.candidates import count_train_texts, is_bare_number, membership, number_share
from sae_lightning.labels.naming.source_documents import document_codes, first_per_document
from sae_lightning.labels.scoring.auroc import LabelScorer, auroc_columns, scored_rows
from sae_lightning.labels.scoring.coherence import feature_coherence
from sae_lightning.labels.scoring.judge import judge_columns
from sae_lightning.labels.scoring.keyword_hits import keyword_precision_recall
from sae_lightning.labels.scoring.scoring_sets import scoring_sets
from tests.test_interpret import PLANTED, plant, topk_sae


@pytest.fixture(scope="module")
def store_parts(small_store):
    X = np.array(small_store.embeddings, dtype=np.float32)  # a writable copy: torch reads it
    meta = small_store.metadata()
    return X, meta["domain"].to_numpy(), document_codes(meta["id"].to_numpy())


def test_sentence_ids_name_their_article():
    codes = document_codes(np.array(["Paris#0", "Paris#3", "Rome#0", "A#b#1"]))
    assert codes[0] == codes[1] != codes[2] and len(set(codes)) == 3
    assert len(set(document_codes(np.array(["x1", "x2", "x3"])))) == 3  # no structure: one text, one document
    rows = np.array([[4, 5, 6, -1], [0, 1, 2, 3]])
    np.testing.assert_array_equal(
        first_per_document(rows, np.array([0, 0, 1, 1, 2, 2, 3])), [[4, 6, -1, -1], [0, 2, -1, -1]]
    )


def test_coherence_separates_a_topic_from_a_mixture(small_store, store_parts):
    """Planted top-text lists on real embeddings: the 12 Mathematics texts nearest the topic's
    centroid (one per article) against 12 texts of 12 articles drawn across all three topics."""
    X, domains, codes = store_parts
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    rng = np.random.default_rng(0)
    lists = []
    for topic in ("Mathematics", "History", "Arts"):
        rows = np.flatnonzero(domains == topic)
        centroid = unit[rows].mean(0)
        ranked = first_per_document(rows[np.argsort(-(unit[rows] @ centroid))][None], codes)[0]
        lists.append(ranked[:12])
    for _ in range(3):
        mixed = first_per_document(rng.permutation(len(X))[None], codes)[0][:12]
        lists.append(mixed)
    top_rows = np.stack(lists)
    got = feature_coherence(top_rows, small_store.embeddings, np.arange(len(X)), codes, min_docs=3, seed=0)
    coherent, mixtures = got.score[:3], got.score[3:]
    assert (np.abs(mixtures) < 1).all(), mixtures  # random texts: as alike as random pairs
    assert coherent.min() > mixtures.max() + 1.5, (coherent, mixtures)
    # one article's sentences count once: 2 documents are too few to tell
    same_article = np.flatnonzero(codes == codes[0])[:2]
    other = np.flatnonzero(codes != codes[0])[:1]
    few = feature_coherence(np.r_[same_article, other][None], small_store.embeddings, np.arange(len(X)), codes)
    assert few.n_docs[0] == 2 and np.isnan(few.score[0])


@pytest.fixture(scope="module")
def math_feature(small_store, store_parts):
    """A TopK SAE whose feature 0 fires on the most typical Mathematics texts only."""
    X, domains, _ = store_parts
    sae = topk_sae(small_store.dim)
    math = np.flatnonzero(domains == "Mathematics")
    centre = X.mean(0)
    direction = X[math].mean(0) - centre
    proj = (X - centre) @ (direction / np.linalg.norm(direction))
    plant(sae, X, PLANTED, math[proj[math] > np.percentile(proj[math], 40)])
    return sae


def test_hard_negatives_never_fire_and_sit_near_the_positives(math_feature, small_store, store_parts):
    X = store_parts[0]
    _, val_idx = split_indices(len(small_store), 0.5, 0)
    sets = scoring_sets(math_feature, small_store, val_idx, m_pos=10, n_negatives=60, n_hard=20, seed=0, batch_size=64)
    with torch.no_grad():
        acts = math_feature.eval().encode(torch.from_numpy(X)).numpy()
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    checked = 0
    for f in range(acts.shape[1]):
        pos, neg, hard = (r[f][r[f] >= 0] for r in (sets.pos_rows, sets.neg_rows, sets.hard_rows))
        if not len(pos):
            assert not len(hard)
            continue
        assert len(hard) == 20 and set(hard) <= set(val_idx) and (acts[hard, f] == 0).all()
        centroid = unit[pos].mean(0)
        assert (unit[hard] @ centroid).mean() > (unit[neg] @ centroid).mean()
        checked += 1
    assert checked > 10


def test_scores_rank_a_right_label_above_a_wrong_one(math_feature, small_store):
    _, val_idx = split_indices(len(small_store), 0.5, 0)
    sets = scoring_sets(math_feature, small_store, val_idx, m_pos=20, n_negatives=200, n_hard=50, seed=0)
    rows = scored_rows(sets)
    scorer = LabelScorer(sets, rows, np.asarray(small_store.embeddings[rows]))
    model = load_model(small_store.model_name)
    labels = {
        "right": ["mathematics", "theorem", "algebra"],
        "wrong": ["painting", "sculpture", "artist"],
        "vague": ["history", "century", "world"],
    }
    d = math_feature.cfg.d_sae
    sets_in = {
        name: ([kws if f == PLANTED else [] for f in range(d)], np.tile(model.encode(kws).mean(0), (d, 1)))
        for name, kws in labels.items()
    }
    got = auroc_columns(scorer, sets_in)
    texts = small_store.metadata()["text"].to_numpy()[sets.val_rows]
    pr = {
        name: keyword_precision_recall(
            kws, texts, sets.firing, {"ngram_range": (1, 2), "stop_words": "english", "lowercase": True}
        )
        for name, (kws, _) in sets_in.items()
    }
    for bad in ("wrong", "vague"):
        assert got["right_auroc"][PLANTED] > got[f"{bad}_auroc"][PLANTED] + 0.2
        assert got["right_auroc_hard"][PLANTED] > got[f"{bad}_auroc_hard"][PLANTED] + 0.1
        assert pr["right"][0][PLANTED] > pr[bad][0][PLANTED] and pr["right"][1][PLANTED] > pr[bad][1][PLANTED]
    assert np.isnan(got["right_auroc"][1:]).all()  # unlabelled features are not scored


def test_bare_numbers_only_where_the_texts_are_about_numbers(small_store):
    assert all(is_bare_number(w) for w in ("2024", "000", "848", "1990s", "19th", "1,200", "2024 848"))
    assert not any(is_bare_number(w) for w in ("population", "2024 census", "b52", "seven"))
    texts = np.array(
        [
            "The census of 2024 counted 848 people, 312 homes and 95 farms in 12 villages.",
            "In 2021 there were 1,200 residents, 410 households and 77 shops in 9 hamlets.",
            "The castle was rebuilt in 1850 after a fire destroyed the old wooden hall and the chapel.",
            "In 1850 the abbey church received a new tower, organ and painted ceiling for the monks.",
        ]
    )
    counts = count_train_texts(texts, np.arange(4), LabelingConfig())
    share = number_share(membership(np.array([[0, 1], [2, 3]]), counts), counts)
    assert share[0] > 0.4 and share[1] < 0.2, share  # a census feature is about numbers; a castle one is not


def test_default_labels_hold_no_bare_number_unless_about_numbers(tiny_labelled_run):
    import pandas as pd

    df = pd.read_parquet(tiny_labelled_run / "features.parquet")
    cfg = LabelingConfig()
    numeric = [(f, k) for f, kws in zip(df["feature_id"], df["keywords"]) for k in kws if is_bare_number(k)]
    for f, _ in numeric:  # any such keyword must sit on a feature whose texts are mostly numbers
        words = " ".join(df.loc[f, "top_texts"]).split()
        assert sum(w.strip(".,;()").replace(",", "").isdigit() for w in words) / len(words) > cfg.numbers_min_share / 3
    assert (df["label"] != "").sum() > 50


def test_judge_scores_with_a_second_model(math_feature, small_store):
    """MiniLM loaded from its folder stands in as the judge here (tests must not need mpnet)."""
    judge = str(Path(resolve_model("sentence-transformers/all-MiniLM-L6-v2")))
    split = split_indices(len(small_store), 0.25, 0)
    df, summary = interpret_sae(math_feature, small_store, *split, LabelingConfig(judge_model=judge))
    assert summary["judge_model"] == judge
    live = df[df["label"] != ""]
    for col in ("judge_label_auroc", "judge_label_auroc_hard", "judge_tfidf_auroc", "judge_random_auroc_hard"):
        assert live[col].notna().all() and ((live[col] >= 0) & (live[col] <= 1)).all()
    row = df.loc[PLANTED]
    assert row["judge_label_auroc"] > row["judge_random_auroc"] + 0.25
    assert summary["judge_label_auroc_mean"] > summary["judge_random_auroc_mean"] + 0.1


def test_judge_embeds_each_distinct_text_once_and_a_relabel_nothing(math_feature, small_store, tmp_path):
    """A fresh copy of the store (so its judge cache starts empty): the first pass embeds exactly
    the distinct scoring texts and keywords; the second, naming the judge by its folder instead,
    embeds nothing and scores bit for bit alike."""
    copy = tmp_path / "store"
    copy.mkdir()
    for name in ("manifest.json", "embeddings.npy", "metadata.parquet"):
        shutil.copy(small_store.path / name, copy / name)
    store = EmbeddingStore(copy)
    _, val_idx = split_indices(len(store), 0.25, 0)
    sets = scoring_sets(math_feature, store, val_idx, m_pos=10, n_negatives=60, n_hard=20, seed=0)
    texts = store.metadata()["text"].to_numpy()
    d = math_feature.cfg.d_sae
    label = [["theorem", "algebra"] if f == PLANTED else ["battle", "empire"] if f % 7 == 3 else [] for f in range(d)]
    label_sets = {"label": label, "tfidf": [["algebra", "empire"] if kws else [] for kws in label]}
    first = judge_columns("sentence-transformers/all-MiniLM-L6-v2", store, texts, sets, label_sets, "keywords", d)
    distinct = set(texts[scored_rows(sets)]) | {"theorem", "algebra", "battle", "empire"}
    slots = sum(int((r >= 0).sum()) for r in (sets.pos_rows, sets.neg_rows, sets.hard_rows))
    assert first.n_embedded == len(distinct) < slots / 5  # each text once, not once per feature that uses it
    assert list((copy / "keybert").glob("*/embeddings.npy"))  # kept beside the store
    folder = str(Path(resolve_model("sentence-transformers/all-MiniLM-L6-v2")))  # the same model by its path
    again = judge_columns(folder, EmbeddingStore(copy), texts, sets, label_sets, "keywords", d)
    assert again.n_embedded == 0
    assert sorted(again.columns) == sorted(first.columns)
    for name, values in first.columns.items():
        np.testing.assert_array_equal(values, again.columns[name])
    assert np.isfinite(first.columns["judge_label_auroc"][PLANTED])


def test_verdicts_and_label_score():
    from sae_lightning.labels.scoring.verdict import label_scores, verdicts

    dead = np.array([True, False, False, False, False])
    coherence = np.array([np.nan, np.nan, 0.5, 3.0, 3.0])
    has_label = np.array([False, True, True, True, False])
    assert verdicts(dead, coherence, has_label, 1.75).tolist() == ["dead", "weak", "mixed", "interpretable", "weak"]
    token = np.array([False, True, True, True, False])  # a token pattern outranks mixed, never weak or dead
    assert verdicts(dead, coherence, has_label, 1.75, token).tolist() == ["dead", "weak", "token", "token", "weak"]
    score = label_scores(np.array([np.nan, 0.8, 0.8, 0.8, np.nan]), coherence, 1.75)
    assert score[3] == pytest.approx(0.8) and score[2] < score[3] / 3 and score[1] == 0  # same AUROC, mixed ranks lower
    # texts alike mostly through one shared word (1.4 without it, 3.0 with) rank below texts alike
    # without theirs (2.5) or with none tested (NaN)
    without = np.array([np.nan, np.nan, np.nan, 1.4, np.nan])
    ranked = label_scores(np.full(5, 0.8), np.array([3.0, 3.0, 3.0, 3.0, 3.0]), 1.75, without)
    assert ranked[3] == pytest.approx(0.8 * 1.4 / 1.75) and (ranked[[0, 1, 2, 4]] == pytest.approx(0.8))
    kept = label_scores(np.full(2, 0.8), np.array([3.0, 1.0]), 1.75, np.array([2.5, 2.5]))
    assert kept.tolist() == pytest.approx([0.8, 0.8 / 1.75])  # never raised by the masked coherence
    # at the default score_coherence (3.5) two perfectly named interpretable features no longer tie:
    # texts alike throughout (4.0) rank above texts held together by a few of them (2.0)
    cfg = LabelingConfig()
    top = label_scores(np.ones(3), np.array([2.0, 4.0, 1.0]), cfg.score_coherence)
    assert top.tolist() == pytest.approx([2.0 / cfg.score_coherence, 1.0, 1.0 / cfg.score_coherence])
    with pytest.raises(UserError, match="labeling.score_coherence=1 is below labeling.coherence_min=1.75"):
        LabelingConfig(score_coherence=1.0)
