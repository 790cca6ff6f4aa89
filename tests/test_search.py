"""Feature search and steering on a tiny real run, with one feature planted along "Mathematics"."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from sae_lightning.data.datamodule import split_indices
from sae_lightning.errors import UserError
from sae_lightning.run_dir import RunDir
from sae_lightning.run_reader import finished_run_info
from sae_lightning.run_schema import verdict_marked, verdict_note
from sae_lightning.scan.stream import top_examples
from sae_lightning.search import (
    embed_query,
    encode,
    find_features,
    nearest_texts,
    open_run,
    parse_clamps,
    steer,
)

from .cli_runner import run_script

MATH_QUERY = "A prime number is divisible only by one and itself, a theorem of number theory."
HISTORY_QUERY = "The dynasty collapsed when invading armies conquered the capital of the empire."


@pytest.fixture(scope="module")
def run_dir(wiki_topk_run):
    """A tiny labelled run over real wiki sentences (read only); `planted` copies it, then feature
    PLANTED of its SAE is replaced by one that fires along the direction from the corpus centre to
    the Mathematics texts."""
    return wiki_topk_run


PLANTED = 5


@pytest.fixture(scope="module")
def planted(run_dir, tmp_path_factory):
    run_copy = tmp_path_factory.mktemp("planted") / "run"
    shutil.copytree(run_dir, run_copy)
    run = open_run(run_copy)
    X = np.asarray(run.store.embeddings, dtype=np.float32)
    math = run.store.metadata()["domain"].to_numpy() == "Mathematics"
    centre = X.mean(0)
    u = X[math].mean(0) - centre
    u /= np.linalg.norm(u)
    sae, scale = run.sae, 4.0
    with torch.no_grad():  # pre = scale * (x - centre) . u: fires on the Mathematics side of the centre
        sae.W_dec[PLANTED] = torch.from_numpy(u)
        sae.W_enc[:, PLANTED] = torch.from_numpy(u) * scale
        sae.b_enc[PLANTED] = -scale * float((centre - sae.b_dec.numpy()) @ u)
    sae.save(run_copy / "sae")
    return run_copy, open_run(run_copy)


def test_search_finds_the_planted_feature_for_a_query_about_its_topic(planted):
    _, run = planted
    hits = find_features(run.sae, run.model, MATH_QUERY, top=10, labels=run.labels)
    assert list(hits.columns) == ["feature_id", "activation", "label"]
    assert PLANTED in hits["feature_id"].head(2).tolist(), hits
    assert (np.diff(hits["activation"]) <= 0).all() and (hits["activation"] > 0).all()
    other = hits[hits["feature_id"] != PLANTED]
    assert other["label"].tolist() == [run.labels[f] for f in other["feature_id"]] and (other["label"] != "").any()
    assert PLANTED not in find_features(run.sae, run.model, HISTORY_QUERY, top=10)["feature_id"].tolist()


def test_search_shows_each_verdict_and_ranks_interpretable_first(planted, tmp_path):
    """features.parquet's verdict reaches the ranking and sae-search's lines: a token or mixed feature
    never answers a query before an interpretable one; the labels are shown as written, and a label
    that does not say its verdict (a token feature's 'numbers: 1924, 1937') is followed by it."""
    run_dir, run = planted
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    hits = find_features(run.sae, run.model, MATH_QUERY, top=64, labels=run.labels)
    first, second = [int(f) for f in hits["feature_id"] if f != PLANTED and run.labels[f]][:2]
    path = RunDir(copy).labeling().features
    df = pd.read_parquet(path)
    df["verdict"] = "interpretable"
    df.loc[df["feature_id"] == first, ["verdict", "label"]] = ["token", "numbers: 1924, 1937"]
    df.loc[df["feature_id"] == second, ["verdict", "label"]] = ["mixed", verdict_marked("mixed", "measles, pregnancy")]
    df.to_parquet(path)
    marked = open_run(copy)
    assert marked.labels[first] == "numbers: 1924, 1937" and marked.labels[second] == "mixed: measles, pregnancy"
    assert marked.verdicts[first] == "token" and marked.verdicts[PLANTED] == "interpretable"
    got = find_features(marked.sae, marked.model, MATH_QUERY, top=64, labels=marked.labels, verdicts=marked.verdicts)
    assert list(got.columns) == ["feature_id", "activation", "label", "verdict"]
    assert got["verdict"].tolist() == ["interpretable"] * (len(got) - 2) + ["token", "mixed"]
    assert got["feature_id"].tolist()[-2:] == [first, second] and (np.diff(got["activation"][:-2]) <= 0).all()
    res = run_script("sae-search", copy, MATH_QUERY, "--top", "64", "-k", "1")
    assert res.code == 0, res.err[-3000:]
    lines = {int(line.split()[0][1:]): line for line in res.out.splitlines() if line.startswith("  #")}
    assert lines[first].endswith("  numbers: 1924, 1937 (token)")  # the verdict its label does not say
    assert lines[second].endswith("  mixed: measles, pregnancy")  # said once, by the label
    assert not any(line.endswith(")") for f, line in lines.items() if f not in (first, second))
    assert sorted(got["feature_id"]) == sorted(hits["feature_id"])  # the same features, reordered


def test_listings_note_only_the_verdicts_a_label_does_not_say():
    """sae-search and sae-diff print a label, then its verdict where the label leaves it out."""
    assert verdict_note("numbers: 1924, 1937", "token") == " (token)"
    assert verdict_note("mixed: measles, pregnancy", "mixed") == ""
    assert verdict_note("poet — writer, poetry", "interpretable") == "" and verdict_note("", "") == ""
    assert verdict_note("", "weak") == " (weak)"


def test_steering_up_moves_the_nearest_texts_toward_the_features_top_texts(planted):
    run_dir, run = planted
    info = finished_run_info(run_dir)
    train_idx, _ = split_indices(len(run.store), info["val_fraction"], info["seed"])
    top = set(top_examples(run.sae, run.store, train_idx, m=30).rows[PLANTED].tolist()) - {-1}
    x = embed_query(run.model, HISTORY_QUERY)
    before = nearest_texts(run.store, x, k=10)
    after = nearest_texts(run.store, steer(run.sae, x, {PLANTED: 0.8}), k=10)
    assert (before["domain"] == "Mathematics").mean() <= 0.2 <= 0.7 <= (after["domain"] == "Mathematics").mean()
    assert len(top & set(after["row"])) > len(top & set(before["row"])), (before["text"], after["text"])
    # The edit is only the steered part: clamping a feature to its own value changes nothing, and the
    # change is the decoded difference along that feature's decoder row.
    z = encode(run.sae, x)[0]
    assert np.allclose(steer(run.sae, x, {PLANTED: float(z[PLANTED])}), x, atol=1e-6)
    moved = steer(run.sae, x, {PLANTED: 0.8}) - x
    assert np.allclose(moved, (0.8 - float(z[PLANTED])) * run.sae.W_dec[PLANTED].detach().numpy(), atol=1e-5)
    batch = steer(run.sae, np.stack([x, x]), {PLANTED: 0.8})  # [n, d] in, [n, d] out
    assert batch.shape == (2, x.shape[0]) and np.allclose(batch[1], x + moved, atol=1e-6)


def test_nearest_texts_equal_brute_force(planted):
    _, run = planted
    X = np.asarray(run.store.embeddings, dtype=np.float32)
    q = embed_query(run.model, MATH_QUERY)
    cos = X @ q / np.linalg.norm(X, axis=1) / np.linalg.norm(q)
    got = nearest_texts(run.store, q, k=7, batch_size=45)  # many uneven batches
    assert got["row"].tolist() == np.argsort(-cos, kind="stable")[:7].tolist()
    assert np.allclose(got["cos"], np.sort(cos)[::-1][:7], atol=1e-5)
    meta = run.store.metadata()
    assert got["text"].tolist() == meta["text"].iloc[got["row"]].tolist()


def test_clamp_arguments(planted):
    _, run = planted
    live = int(np.flatnonzero(np.isfinite(run.max_acts) & (run.max_acts > 0))[0])
    assert parse_clamps([f"{live}=2x", "3=0", "4=0.25"], run) == {
        live: pytest.approx(2 * run.max_acts[live]),
        3: 0.0,
        4: 0.25,
    }
    for bad, msg in (
        ("7", "use FEATURE=VALUE"),
        ("a=1", "use FEATURE=VALUE"),
        ("64=1", "features 0..63"),
        ("3=nan", "with a finite number"),
        ("3=-inf", "with a finite number"),
        ("3=nanx", "finite"),
        ("6_0=1", "use FEATURE=VALUE"),  # int() reads feature 60
        ("3=1_0", "use FEATURE=VALUE"),  # float() reads 10
        ("\u0663=1", "use FEATURE=VALUE"),  # an Arabic-Indic 3, which int() reads
    ):
        with pytest.raises(UserError, match=msg):
            parse_clamps([bad], run)
    assert parse_clamps("3=0.5", run) == {3: 0.5}  # one clamp as a string, not its characters '3', '=', ...
    with pytest.raises(UserError, match=r"^--clamp '3=2': feature 3 is clamped twice; give each feature one value$"):
        parse_clamps(["3=1", "3=2"], run)  # the last one silently won
    with pytest.raises(UserError, match=r"^clamps must be a list of FEATURE=VALUE strings.*got None"):
        parse_clamps(None, run)


def test_sae_search_command_prints_features_and_texts_before_and_after(planted):
    run_dir, _ = planted
    res = run_script("sae-search", run_dir, HISTORY_QUERY, "--clamp", f"{PLANTED}=0.8", "-k", "3")
    assert res.code == 0, res.err[-3000:]
    out = res.out
    assert "features it activates:" in out and "nearest texts:" in out and f"after #{PLANTED}=0.8:" in out
    after = out.split("after")[1]
    assert after.count("[Mathematics]") >= 2
    res = run_script("sae-search", run_dir, HISTORY_QUERY, "--clamp", "99=1")
    assert (
        res.code == 2
        and res.err.strip().splitlines()[-1] == "error: feature 99 does not exist: this SAE has features 0..63"
    )


def test_a_query_that_is_not_utf8_is_one_line(planted):
    """A byte that is no UTF-8 (a Latin-1 terminal's é) reaches sae-search as a lone surrogate: the
    tokenizer failed on it with a TypeError traceback, in sae-search and in the API alike."""
    run_dir, run = planted
    res = run_script("sae-search", run_dir, os.fsdecode(b"alg\xe8bre"))
    assert res.code == 2 and res.err.splitlines() == [
        "error: the query holds the byte 0xe8 at character 3, which is not UTF-8 text; "
        "give it as UTF-8 (a UTF-8 terminal locale, or the file converted with iconv -t UTF-8)"
    ], res.err[-2000:]
    with pytest.raises(UserError, match=r"^text #1 holds the lone surrogate U\+D800 at character 0"):
        embed_query(run.query_encoder, ["algebra", "\ud800"])
