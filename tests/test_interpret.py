"""Feature interpretation on real data: real MiniLM, real KeyBERT, small stores.

SAEs are real `build_sae` TopK SAEs; where a test needs a feature with a known meaning, its
encoder column and decoder row are planted on the centroid of one group of texts, with a bias that
makes it fire on that group only. The labelling callback inside a Trainer is tested in
test_interpret_callback.py."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from sae_lightning.data.datamodule import split_indices
from sae_lightning.data.embed import Embedder, build_store, load_model
from sae_lightning.data.sources import TextFiles
from sae_lightning.label_run import label_run_dir
from sae_lightning.labels import FEATURE_COLUMNS, LabelingConfig, interpret_sae, write_features
from sae_lightning.labels.naming.label_embedding import label_text
from sae_lightning.labels.naming.phrases import PhraseAnalyzer
from sae_lightning.labels.scoring.auroc import mann_whitney_auroc
from sae_lightning.labels.scoring.scoring_sets import scoring_sets
from sae_lightning.models import build_sae, sae_config
from sae_lightning.run_dir import RunDir
from sae_lightning.run_schema import INTERPRETABLE, LABEL_SETS, TOKEN, VERDICTS, verdict_marked
from sae_lightning.scan.stream import top_examples
from sae_lightning.schemas.domain import FilesConfig

D_SAE, K = 48, 6
PLANTED, DEAD = 0, 1


def topk_sae(d_in: int, d_sae: int = D_SAE, k: int = K, seed: int = 0):
    torch.manual_seed(seed)
    return build_sae(sae_config(architecture="topk", d_in=d_in, d_sae=d_sae, k=k))


@torch.no_grad()
def plant(sae, X: np.ndarray, feature: int, on: np.ndarray, scale: float = 20.0) -> None:
    """Feature `feature` fires exactly on the rows `on` of X... as far as a linear threshold along
    the centroid direction can separate them: the threshold sits just above every other row."""
    centre = X.mean(0)
    direction = X[on].mean(0) - centre
    direction /= np.linalg.norm(direction)
    proj = (X - centre) @ direction
    off = np.setdiff1d(np.arange(len(X)), on)
    threshold = max(proj[off].max(), np.median(proj[on]) - 1e-3) + 1e-4 if len(off) else proj.min() - 1
    sae.b_dec.copy_(torch.from_numpy(centre))
    sae.W_enc[:, feature] = torch.from_numpy(direction) * scale
    sae.b_enc[feature] = -scale * float(threshold)
    sae.W_dec[feature] = torch.from_numpy(direction)


@torch.no_grad()
def kill(sae, feature: int) -> None:
    sae.W_enc[:, feature] = 0
    sae.b_enc[feature] = -1e4  # never among the top k, and ReLU would zero it anyway


@pytest.fixture(scope="module")
def split(small_store):
    return split_indices(len(small_store), 0.25, 0)


@pytest.fixture(scope="module")
def planted_sae(small_store):
    """Feature 0 fires on Mathematics texts only (every train text above the threshold is one),
    feature 1 is dead, the rest are random."""
    X = np.asarray(small_store.embeddings, dtype=np.float32)
    domains = small_store.metadata()["domain"].to_numpy()
    sae = topk_sae(small_store.dim)
    math = np.flatnonzero(domains == "Mathematics")
    centre = X.mean(0)
    direction = X[math].mean(0) - centre
    proj = (X - centre) @ (direction / np.linalg.norm(direction))
    # Fire on the most typical half of the Mathematics texts, above any other text's projection.
    on = math[proj[math] > max(np.median(proj[math]), np.percentile(proj[domains != "Mathematics"], 99.5))]
    plant(sae, X, PLANTED, on)
    kill(sae, DEAD)
    return sae


@pytest.fixture(scope="module")
def labelled(planted_sae, small_store, split):
    train_idx, val_idx = split
    return interpret_sae(planted_sae, small_store, train_idx, val_idx, LabelingConfig())  # the defaults = the YAML's


# ---- the top-example pass ------------------------------------------------------------------------


def test_top_examples_equal_brute_force(small_store, split):
    train_idx, val_idx = split
    sae = topk_sae(small_store.dim, d_sae=40, k=5, seed=1)
    m = 7
    got = top_examples(sae, small_store, train_idx, m=m, batch_size=37)  # uneven batches: merging is exercised

    with torch.no_grad():
        acts = sae.eval().encode(torch.from_numpy(np.asarray(small_store.embeddings[train_idx], np.float32))).numpy()
    codes, names = pd.factorize(small_store.metadata()["domain"].to_numpy()[train_idx], sort=True)
    assert got.domains == list(names)
    np.testing.assert_array_equal(got.fire_counts, (acts > 0).sum(0))
    mass = np.stack([acts[codes == j].sum(0) for j in range(len(names))], 1)
    np.testing.assert_allclose(got.domain_mass, mass, rtol=1e-5, atol=1e-5)
    for f in range(acts.shape[1]):
        order = np.argsort(-acts[:, f], kind="stable")[:m]
        want = acts[order, f]
        want_rows = np.where(want > 0, train_idx[order], -1)
        np.testing.assert_allclose(got.acts[f], np.where(want > 0, want, 0), rtol=1e-6)
        assert set(got.rows[f][got.rows[f] >= 0]) == set(want_rows[want_rows >= 0])

    sets = scoring_sets(sae, small_store, val_idx, m_pos=5, n_negatives=30, n_hard=10, seed=3, batch_size=41)
    with torch.no_grad():
        vacts = sae.encode(torch.from_numpy(np.asarray(small_store.embeddings[val_idx], np.float32))).numpy()
    order = np.argsort(val_idx)
    np.testing.assert_array_equal(sets.val_rows, val_idx[order])
    np.testing.assert_allclose(sets.firing.toarray(), np.where(vacts > 0, vacts, 0)[order].T, rtol=1e-5)
    for f in range(vacts.shape[1]):
        firing = vacts[:, f] > 0
        pos = sets.pos_rows[f][sets.pos_rows[f] >= 0]
        assert len(pos) == min(5, firing.sum()) and set(pos) <= set(val_idx[firing])
        if firing.sum() > 5:  # stratified: the strongest and the weakest firing are both positives
            assert val_idx[np.argmax(vacts[:, f])] in pos
            assert val_idx[np.flatnonzero(firing)[np.argmin(vacts[firing, f])]] in pos
        zeros = set(val_idx[~firing])
        neg = sets.neg_rows[f][sets.neg_rows[f] >= 0]
        assert len(neg) == len(set(neg)) == min(30, len(zeros)) and set(neg) <= zeros


def test_auroc_formula():
    pos = np.array([[3.0, 2.0, np.nan], [1.0, 1.0, 1.0]])
    neg = np.array([[1.0, 2.0], [1.0, np.nan]])
    np.testing.assert_allclose(mann_whitney_auroc(pos, neg), [(2 + 1.5) / 4, 0.5])


# ---- labels and scores ---------------------------------------------------------------------------


def test_features_table_contract(labelled, tmp_path):
    df, summary = labelled
    assert list(df.columns) == FEATURE_COLUMNS and len(df) == D_SAE
    assert df["feature_id"].tolist() == list(range(D_SAE))
    path = write_features(df, tmp_path)
    schema = pq.read_schema(path)
    assert schema.field("keywords").type.value_type == pa.string()
    assert schema.field("top_acts").type.value_type == pa.float64()
    back = pd.read_parquet(path)
    assert back["label"].tolist() == df["label"].tolist()
    for key in (
        "label_auroc",
        "label_auroc_hard",
        "label_precision",
        "label_recall",
        "tfidf_auroc",
        "random_auroc_hard",
        "coherence",
        "label_score",
    ):
        assert f"{key}_mean" in summary and f"{key}_median" in summary
    assert back["verdict"].isin(VERDICTS).all()
    assert sum(summary[f"n_{v}"] for v in VERDICTS) == D_SAE
    assert summary["judge_model"] == "" and df["judge_label_auroc"].isna().all()  # no judge by default
    assert summary["n_features"] == D_SAE and summary["n_dead"] >= 1
    assert (
        summary["n_labelled"] == (df["label"] != "").sum()
        and (df.loc[df["label"] == "", "verdict"] != "interpretable").all()
    )
    assert all(k.startswith("time_") for k in summary if "time" in k) and summary["time_total"] > 0


def test_live_labels_come_from_their_top_texts(labelled):
    df, _ = labelled
    analyzer = PhraseAnalyzer((1, 2), "english")
    live = df[~df["dead"]]
    assert len(live) > 10 and (live["label"] != "").mean() > 0.8
    for _, row in live.iterrows():
        if not row["label"]:  # no keyword recurs in two top texts from distinct documents: it says so
            assert row["label_reason"].startswith("no recurring keyword") and row["verdict"] == "weak"
            continue
        if row["verdict"] == TOKEN:  # the label names the pattern, the reason its shares; keywords stay
            assert row["label"].startswith(('token: "', "numbers: ")) and row["label_reason"].startswith(row["label"])
            continue
        assert row["label_reason"] == ""
        # a mixed or weak feature's label says its verdict first ("mixed: measles, pregnancy")
        named = label_text(row["concept"], list(row["keywords"]))
        assert row["label"] == (named if row["verdict"] == INTERPRETABLE else verdict_marked(row["verdict"], named))
        assert bool(row["concept"]) == (row["verdict"] == "interpretable")  # a head term only where texts share one
        assert len(row["keywords"]) == len(row["keyword_scores"]) <= 3
        # every keyword is held by top texts of two distinct articles, as adjacent words
        docs = {}
        for i, t in zip(row["top_ids"], row["top_texts"]):
            docs.setdefault(i.rsplit("#", 1)[0], set()).update(analyzer(t))
        for k in row["keywords"]:
            assert sum(k in grams for grams in docs.values()) >= 2, (k, row["top_texts"][:3])
            assert not any(k != o and f" {k} " in f" {o} " for o in row["keywords"]), row["keywords"]
        assert row["top_acts"] == sorted(row["top_acts"], reverse=True) and min(row["top_acts"]) > 0
        assert len(row["top_ids"]) == len(row["top_texts"]) == len(row["top_domains"]) == len(row["top_acts"]) <= 30
        assert abs(sum(json.loads(row["domain_shares"]).values()) - 1) < 1e-3


def test_scores_in_range(labelled):
    df, _ = labelled
    for col in [f"{p}_{k}" for p in LABEL_SETS for k in ("auroc", "auroc_hard", "precision", "recall")]:
        v = df[col].dropna()
        assert len(v) > 10 and ((v >= 0) & (v <= 1)).all()
    spec = df.loc[~df["dead"], "domain_specificity"]
    assert ((spec >= 0) & (spec <= 1)).all()


def test_planted_feature_is_named_after_its_topic(labelled, small_store):
    df, summary = labelled
    row = df.loc[PLANTED]
    assert row["main_domain"] == "Mathematics" and set(row["top_domains"]) == {"Mathematics"}
    assert row["domain_specificity"] > 0.9
    assert row["label_auroc"] > 0.9 and row["label_auroc"] > row["random_auroc"] + 0.25
    assert row["label_auroc"] > summary["random_auroc_mean"] + 0.3
    # recall counts the label's words as written: "mathematical — equation" shows "mathematics" once,
    # as its head term's form, and the texts holding only "mathematics" do not count
    assert row["label_precision"] > 0.2 and row["label_recall"] > 0.05
    assert row["verdict"] == "interpretable" and row["coherence"] > 1
    # "about the topic": the label sits closer to the Mathematics texts than to any other topic's.
    X = np.asarray(small_store.embeddings, dtype=np.float32)
    domains = small_store.metadata()["domain"].to_numpy()
    label = load_model(small_store.model_name).encode([row["label"]])[0]
    sims = {
        d: float(np.dot(label, X[domains == d].mean(0)) / np.linalg.norm(X[domains == d].mean(0)))
        for d in np.unique(domains)
    }
    assert max(sims, key=sims.get) == "Mathematics", (row["label"], sims)


def test_dead_feature_is_reported_not_labelled(labelled):
    df, _ = labelled
    row = df.loc[DEAD]
    assert row["dead"] and row["density"] == 0 and row["log10_density"] == -np.inf
    assert row["label"] == "" and row["label_reason"].startswith("dead") and list(row["keywords"]) == []
    assert np.isnan(row["label_auroc"]) and row["main_domain"] == "" and row["tfidf_label"] == ""


def test_relabel_embeds_nothing_new(planted_sae, small_store, split, labelled):
    """Candidate words and labels are cached with the store: a second pass costs no model call."""
    _, summary = interpret_sae(planted_sae, small_store, *split, LabelingConfig())
    assert summary["n_phrases_embedded"] == 0
    assert summary["label_auroc_mean"] == pytest.approx(labelled[1]["label_auroc_mean"])


@pytest.mark.parametrize("doc_embedding", ["concat", "decoder"])
def test_other_doc_embeddings_label_the_planted_feature(planted_sae, small_store, split, doc_embedding):
    df, _ = interpret_sae(planted_sae, small_store, *split, LabelingConfig(doc_embedding=doc_embedding, seed=0))
    assert df.loc[PLANTED, "label"] and df.loc[PLANTED, "label_auroc"] > 0.8
    assert (df.loc[~df["dead"], "label"] != "").all()


# ---- bad input: texts without candidate words, non-English texts ---------------------------------


@pytest.fixture(scope="module")
def odd_store(cache_dir, tmp_path_factory):
    """English, German and stop-words-only texts: the last give a vectorizer no candidate at all."""
    rng = np.random.default_rng(0)
    english = [
        "The cat sat on the warm mat near the kitchen window.",
        "Dogs chase balls in the park every morning.",
        "Stock markets fell sharply after the bank raised interest rates.",
        "Rain is expected across the valley tonight.",
        "The orchestra played a symphony by Beethoven.",
        "Farmers harvest wheat in late summer.",
        "The new bridge connects the island to the mainland.",
        "Children learn to read with picture books.",
        "Volcanoes erupt when magma reaches the surface.",
        "The chef cooked pasta with fresh tomatoes.",
        "Satellites orbit the earth and relay signals.",
        "The museum opened a gallery of ancient coins.",
    ]
    german = [
        "Der Hund spielt im Garten mit dem Ball.",
        "Die Katze schläft auf dem warmen Sofa.",
        "Morgen regnet es in ganz Bayern.",
        "Der Zug nach Berlin fährt um acht Uhr ab.",
        "Die Kinder lesen ein spannendes Buch über Drachen.",
        "Im Winter schneit es oft in den Alpen.",
        "Das Orchester spielt eine Sinfonie von Mozart.",
        "Der Bäcker backt frisches Brot mit Körnern.",
    ]
    stop = sorted(ENGLISH_STOP_WORDS)
    stopwords_only = [" ".join(rng.choice(stop, 6)).capitalize() + "." for _ in range(8)] + ["a b c", "I x"]
    frame = pd.DataFrame(
        {
            "text": english + german + stopwords_only,
            "domain": ["en"] * len(english) + ["de"] * len(german) + ["stop"] * len(stopwords_only),
        }
    )
    path = tmp_path_factory.mktemp("odd") / "odd.csv"
    frame.to_csv(path, index=False)
    return build_store(
        TextFiles(FilesConfig(path=str(path), domain_column="domain")), Embedder(show_progress=False), cache_dir
    )


def test_no_candidate_words_and_german_texts(odd_store):
    X = np.asarray(odd_store.embeddings, dtype=np.float32)
    domains = odd_store.metadata()["domain"].to_numpy()
    sae = topk_sae(odd_store.dim, d_sae=8, k=2)
    plant(sae, X, 0, np.flatnonzero(domains == "stop"))
    plant(sae, X, 1, np.flatnonzero(domains == "de"))
    rows = np.arange(len(odd_store))
    df, summary = interpret_sae(sae, odd_store, rows, rows, LabelingConfig(m=5))
    assert set(df.loc[0, "top_domains"]) == {"stop"}
    assert df.loc[0, "label"] == "" and df.loc[0, "label_reason"].startswith("no candidate words")
    assert np.isnan(df.loc[0, "label_auroc"])
    assert set(df.loc[1, "top_domains"]) == {"de"} and df.loc[1, "label"]  # German still gets a label

    # Candidates that exist but are all filtered out by min_df say so.
    df, _ = interpret_sae(sae, odd_store, rows, rows, LabelingConfig(m=5, min_df=1000))
    assert (df.loc[~df["dead"], "label"] == "").all()
    assert df.loc[1, "label_reason"].startswith("no recurring keyword") and "min_df=1000" in df.loc[1, "label_reason"]

    # No validation texts (val_fraction=0): labels are still made, scores are NaN, not an error.
    df, summary = interpret_sae(sae, odd_store, rows, rows[:0], LabelingConfig(m=5))
    assert df.loc[1, "label"] and df["label_auroc"].isna().all() and np.isnan(summary["label_auroc_mean"])

    # A train split with no candidate word at all: every live feature says so, nothing crashes.
    stop_rows = np.flatnonzero(domains == "stop")
    df, summary = interpret_sae(sae, odd_store, stop_rows, rows, LabelingConfig(m=5))
    live = df[~df["dead"]]
    assert len(live) and (live["label"] == "").all()
    assert live["label_reason"].str.contains("the train split").all()
    assert summary["n_labelled"] == 0 and (live["verdict"] == "weak").all()


# ---- relabelling a saved run ---------------------------------------------------------------------


def test_label_run_dir(planted_sae, small_store, tmp_path):
    run = tmp_path / "run"
    planted_sae.save(run / "sae")
    (run / "run.json").write_text(json.dumps({"store_path": str(small_store.path), "val_fraction": 0.25, "seed": 0}))
    RunDir(run).write_metrics({"fve": 0.5, "l0": 6.0})
    metrics = (run / "metrics.json").read_bytes()
    df, summary = label_run_dir(run, LabelingConfig(top_n=2))
    labeling = RunDir(run).labeling()
    assert labeling.has_features() and len(df) == D_SAE and (run / "features.parquet").is_file()
    assert (run / "metrics.json").read_bytes() == metrics  # training's file, never rewritten by labelling
    assert labeling.summary()["label_auroc_mean"] == pytest.approx(summary["label_auroc_mean"])
    assert labeling.settings()["top_n"] == 2 and labeling.timings()["total"] == summary["time_total"]
    assert RunDir(run).results()["fve"] == 0.5
    assert df.loc[PLANTED, "label"] and len(df.loc[PLANTED, "keywords"]) <= 2


def test_label_run_dir_rejects_unfinished_runs(small_store, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        label_run_dir(tmp_path / "nowhere")
    (tmp_path / "half").mkdir()
    with pytest.raises(
        ValueError, match=r"not a finished run: missing sae/cfg.json, sae/sae_weights.safetensors, run.json"
    ):
        label_run_dir(tmp_path / "half")
    topk_sae(small_store.dim, d_sae=8, k=2).save(tmp_path / "half" / "sae")
    (tmp_path / "half" / "run.json").write_text(json.dumps({"store_path": str(small_store.path)}))
    with pytest.raises(ValueError, match=r"missing run.json:val_fraction, run.json:seed"):
        label_run_dir(tmp_path / "half")
