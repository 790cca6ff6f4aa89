"""The public Python API (sae_lightning.api) on real runs: load, encode, look up, train from Python."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import sae_lightning as sl
from sae_lightning.api import run_roots
from sae_lightning.data.embed import load_model
from sae_lightning.errors import UserError
from sae_lightning.models import SparseAutoencoder

from .conftest import compose_cfg

TEXTS = ["Euler proved the formula for polyhedra.", "The empire fell to invading armies."]


@pytest.fixture(scope="module")
def run(tiny_labelled_run):
    return sl.Run.load(tiny_labelled_run)


def test_load_gives_the_runs_sae_labels_store_and_model(run, tiny_labelled_run):
    assert run.path == tiny_labelled_run and run.d_sae == 128
    assert run.model_name == "sentence-transformers/all-MiniLM-L6-v2"
    assert str(run.store.path) == json.loads((tiny_labelled_run / "run.json").read_text())["store_path"]
    assert len(run.store) == 600
    table = pd.read_parquet(tiny_labelled_run / "features.parquet")
    by_id = table.set_index("feature_id")
    # the labels and verdicts as the labelling wrote them
    assert run.labels == [by_id.loc[i, "label"] or "" for i in range(run.d_sae)]
    assert run.verdicts == [by_id.loc[i, "verdict"] for i in range(run.d_sae)]
    # a mixed feature's label says so itself ("mixed: …", never a bare keyword list)
    mixed = [lab for lab, v in zip(run.labels, run.verdicts) if v == "mixed" and lab]
    assert mixed and all(lab.startswith("mixed: ") for lab in mixed)
    f = run.feature(int(table["feature_id"][0]))
    assert f.verdict == table["verdict"][0] and f.interpretable == (f.verdict == "interpretable")
    metrics = json.loads((tiny_labelled_run / "metrics.json").read_text())
    assert len(run.features) == len(table) and run.metrics["fve"] == pytest.approx(metrics["metrics"]["fve"])
    # the current labelling: the one labeling.json names, with its summary and settings
    current = json.loads((tiny_labelled_run / "labeling.json").read_text())["current"]
    labels = json.loads((tiny_labelled_run / "labelings" / current / "labels.json").read_text())
    assert run.labeling.id == current and [lab.id for lab in run.labelings()] == [current]
    assert run.labels_summary == labels["labels"] and run.labeling.settings() == labels["settings"]
    assert "label_auroc_mean" in run.labels_summary and "label_auroc_mean" not in run.metrics


def test_encode_is_the_runs_model_then_its_sae(run, tiny_labelled_run):
    z = run.encode(TEXTS)
    sae = SparseAutoencoder.load(tiny_labelled_run / "sae")
    emb = load_model(run.model_name).encode(TEXTS, convert_to_numpy=True, show_progress_bar=False)
    with torch.no_grad():
        want = sae.eval().encode(torch.from_numpy(emb)).numpy()
    assert z.shape == (2, 128) and np.allclose(z, want, atol=1e-5)
    assert ((z > 0).sum(axis=1) <= sae.cfg.k).all() and (z > 0).any()
    assert np.allclose(run.encode(TEXTS[0]), z[0], atol=1e-5)  # one text: one row, same values
    # "" is one text (its length, 0, once made run.encode("") an IndexError and run.embed("") no row)
    assert run.embed("").shape == (384,) and np.allclose(run.encode(""), run.encode([""])[0], atol=1e-5)
    assert run.encode([]).shape == (0, 128) and run.embed([]).shape == (0, 384)


def test_top_features_are_the_strongest_with_their_labels_and_scores(run):
    hits = run.top_features(TEXTS[1], k=5)
    z = run.encode(TEXTS[1])
    verdict = run.features.set_index("feature_id")["verdict"].reindex(range(run.d_sae)).to_numpy()
    fired = np.flatnonzero(z > 0)  # interpretable features first, each group by activation
    order = fired[np.lexsort((fired, -z[fired], verdict[fired] != "interpretable"))]
    assert list(hits["feature_id"]) == list(order[: len(hits)]) and list(hits["verdict"]) == list(
        verdict[hits["feature_id"]]
    )
    assert len(hits) == min(5, int((z > 0).sum())) and (hits["activation"] > 0).all()
    for f in hits.itertuples():
        assert f.label == run.labels[f.feature_id]
        want = run.features.set_index("feature_id").loc[f.feature_id, "label_auroc"]
        assert f.label_auroc == pytest.approx(want, nan_ok=True)


def test_a_features_top_texts_and_shares_come_from_the_labelling(run):
    live = run.features[~run.features["dead"]]
    i = int(live["feature_id"].iloc[0])
    f = run.feature(i)
    row = live.iloc[0]
    assert f.id == i and f.label == row["label"] and f.keywords == list(row["keywords"])
    assert list(f.top_texts["text"]) == list(row["top_texts"]) and f.top_texts["activation"].is_monotonic_decreasing
    assert sum(f.domain_shares.values()) == pytest.approx(1.0, abs=0.01) and "label_auroc" in f.scores
    assert list(run.top_texts(i, n=3)["text"]) == list(row["top_texts"][:3])


def test_nearest_texts_of_a_store_text_is_itself(run):
    text = run.store.metadata()["text"].iloc[7]
    assert run.nearest_texts(text, k=3)["text"].iloc[0] == text


@pytest.mark.parametrize("bad", [-1, 128, 10**6])
def test_feature_ids_out_of_range_are_refused_in_one_line(run, bad):
    for call in (lambda: run.feature(bad), lambda: run.top_texts(bad), lambda: run.steer(TEXTS[0], {bad: 0.0})):
        with pytest.raises(UserError, match=rf"feature {bad} does not exist: this SAE has features 0..127") as err:
            call()
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("query", ["", "   \n"])
def test_an_empty_query_is_one_line_as_in_sae_search(run, query):
    """top_features and nearest_texts listed features and texts for an empty query (those of an
    embedding that means nothing in particular), where sae-search refused it; encode still takes ""."""
    for search in (run.top_features, run.nearest_texts):
        with pytest.raises(UserError, match=r"^the query is empty; give a sentence to search for"):
            search(query)
    assert run.encode("").shape == (run.d_sae,)


def test_unfinished_runs_are_refused_in_one_line(tiny_labelled_run, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(tiny_labelled_run, partial, ignore=shutil.ignore_patterns("wandb", "checkpoints"))
    (partial / "metrics.json").unlink()
    with pytest.raises(UserError, match="is not a finished run: no metrics.json.*ckpt_path=last") as err:
        sl.Run.load(partial)
    shutil.rmtree(partial / "sae")
    with pytest.raises(UserError, match="is not a finished run: missing sae/cfg.json"):
        sl.Run.load(partial)
    with pytest.raises(UserError, match="the folder does not exist"):
        sl.Run.load(tmp_path / "nothing")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "array, what",
    [
        (np.zeros((4, 8), dtype=np.int64), "int64 of shape \\(4, 8\\)"),
        (np.zeros(8, dtype=np.float32), "float32 of shape \\(8,\\)"),
        (np.zeros((2, 3, 4), dtype=np.float32), "float32 of shape \\(2, 3, 4\\)"),
        (np.zeros((0, 8), dtype=np.float32), "float32 of shape \\(0, 8\\)"),
        (np.array([["a", "b"]]), "of shape \\(1, 2\\)"),
    ],
)
def test_train_sae_refuses_arrays_that_are_not_2d_float(array, what, tmp_path):
    with pytest.raises(UserError, match="embeddings must be a non-empty 2-D float array .*" + what):
        sl.train_sae(array, output_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_train_sae_refuses_nan_unknown_settings_and_a_second_domain(tmp_path):
    x = np.ones((10, 4), dtype=np.float32)
    x[3, 1] = np.nan
    with pytest.raises(UserError, match="NaN or Inf \\(first at row 3\\)"):
        sl.train_sae(x, output_dir=tmp_path / "a")
    with pytest.raises(UserError, match="^sae.nope is not a setting \\(the sae settings are: ") as err:
        sl.train_sae(np.ones((10, 4), np.float32), sae={"nope": 1}, output_dir=tmp_path / "b")
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="unknown sae nope; known: .*topk"):
        sl.train_sae(np.ones((10, 4), np.float32), sae="nope", output_dir=tmp_path / "c")
    with pytest.raises(UserError, match="drop the domain="):
        sl.train_sae(np.ones((10, 4), np.float32), "domain=wiki_all", output_dir=tmp_path / "d")
    # composed by sae-train's own code: Hydra's lexer line ("LexerNoViableAltException ... See
    # https://hydra.cc/...") becomes the quoting hint there too
    with pytest.raises(UserError, match="^domain.name=Zürich cannot be read as a setting: .*\"domain.name='Zürich'\""):
        sl.train_sae(np.ones((10, 4), np.float32), "domain.name=Zürich", output_dir=tmp_path / "e")
    assert not any((tmp_path / d).exists() for d in "abcd")


def test_train_sae_refuses_an_empty_output_dir(tmp_path, monkeypatch):
    """output_dir="" (a variable left empty) trained into the current folder, which became the run."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        UserError, match="^output_dir is empty; give a folder, or leave output_dir out for its default$"
    ):
        sl.train_sae(np.ones((10, 4), np.float32), output_dir="")
    assert list(tmp_path.iterdir()) == []


def test_train_sae_refuses_a_folder_inside_a_run_or_through_a_link_to_nothing(tmp_path):
    # a run folder inside another run's (here, its sae/): refused before the store, as sae-train's run_dir=
    (tmp_path / "run" / "sae").mkdir(parents=True)
    (tmp_path / "run" / "run.json").write_text("{}")
    with pytest.raises(UserError, match="^.*/run/sae/x is inside the run .*/run, .*; change output_dir to a folder"):
        sl.train_sae(np.ones((10, 4), np.float32), output_dir=tmp_path / "run" / "sae" / "x")
    assert not (tmp_path / "run" / "sae" / "x").exists()
    # a folder through a link to nothing (an unmounted disk): refused as sae-train refuses it; the
    # resolved path made the link's target instead
    (tmp_path / "outputs").symlink_to(tmp_path / "gone")
    with pytest.raises(UserError, match=r"outputs is a link to .*gone, which does not exist; .* change output_dir$"):
        sl.train_sae(np.ones((10, 4), np.float32), output_dir=tmp_path / "outputs" / "x")
    assert not (tmp_path / "gone").exists()


def test_train_sae_on_an_array_uses_the_yaml_defaults(small_store, cache_dir, tmp_path, monkeypatch):
    """Settings not given are sae-train's (the schemas' defaults and conf/'s presets); so is the run folder."""
    monkeypatch.chdir(tmp_path)
    x = torch.from_numpy(np.array(small_store.embeddings[:400], dtype=np.float32))
    run = sl.train_sae(
        x,
        sae={"d_sae": 64},
        data={"batch_size": 64},
        trainer={"max_epochs": 1},
        logger="none",
        labeling={"enabled": False},
        paths={"cache_dir": str(cache_dir)},
    )
    default = compose_cfg([], tmp_path, tmp_path)  # what sae-train composes
    topk, module = default.sae, default.module
    assert run.sae.cfg.k == topk.k and run.sae.cfg.d_sae == 64 and run.sae.cfg.architecture == "topk"
    hparams = torch.load(run.path / "checkpoints" / "last.ckpt", weights_only=False)["hyper_parameters"]
    assert hparams["lr"] == module.lr and hparams["warmup_steps"] == module.warmup_steps
    assert run.path.parent == (tmp_path / "outputs" / "train" / "runs" / "npy").resolve()
    assert run.features is None and 0 < run.metrics["l0"] <= topk.k
    assert len(run.store) == 400 and np.allclose(run.store.embeddings[:5], x[:5].numpy())
    with pytest.raises(UserError, match="precomputed embeddings"):  # no model known: texts cannot be encoded
        run.encode("a text")
    z = run.encode_embeddings(x[:3])
    assert z.shape == (3, 64) and ((z > 0).sum(1) <= topk.k).all()


def test_train_sae_on_a_store_keeps_its_model_and_texts(small_store, cache_dir, tmp_path):
    run = sl.train_sae(
        small_store.path,
        "sae=relu",
        "sae.d_sae=64",
        "trainer.max_epochs=1",
        "logger=none",
        "labeling.enabled=false",
        data={"batch_size": 128},
        paths={"cache_dir": str(cache_dir)},
        output_dir=tmp_path / "run",
    )
    assert run.path == (tmp_path / "run").resolve() and run.sae.cfg.architecture == "relu"
    assert run.model_name == small_store.model_name and len(run.store) == len(small_store)
    assert (
        run.nearest_texts(small_store.metadata()["text"].iloc[0], k=1)["text"].iloc[0]
        == small_store.metadata()["text"].iloc[0]
    )
    assert run.encode(TEXTS).shape == (2, 64)


def test_latest_run_is_found_from_any_folder(tiny_labelled_run, tmp_path, monkeypatch):
    monkeypatch.delenv("SAE_RUN_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    roots = run_roots()
    assert roots[-1] == (Path(sl.__file__).resolve().parent.parent / "outputs")  # the clone's outputs/, from anywhere
    monkeypatch.setenv("SAE_LIGHTNING_OUTPUTS", str(tiny_labelled_run))  # a root that is itself a run
    assert sl.latest_run().path == tiny_labelled_run
    monkeypatch.setenv("SAE_RUN_DIR", str(tiny_labelled_run))
    assert sl.latest_run().path == tiny_labelled_run
    assert tiny_labelled_run in sl.find_runs(tiny_labelled_run.parent)  # a folder of runs: each finished one
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("SAE_RUN_DIR", str(tmp_path / "empty"))
    with pytest.raises(UserError, match="no finished run under .*empty; run `make run` first, or set SAE_RUN_DIR"):
        sl.latest_run()
    # SAE_RUN_DIR a run still training: it said 'set SAE_RUN_DIR to a run folder', which it was
    training = tmp_path / "training"
    shutil.copytree(tiny_labelled_run, training, symlinks=True)
    (training / "metrics.json").unlink()
    monkeypatch.setenv("SAE_RUN_DIR", str(training))
    with pytest.raises(UserError, match=f"^{training} has not finished training .*ckpt_path=last"):
        sl.latest_run()
