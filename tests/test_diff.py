"""sae-diff: planted differences are found with the right direction and significance and nothing
else is reported; the statistics agree with scipy; bad input is one line; the command end to end."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from sae_lightning.diff import DiffSettings, diff_groups, diff_table
from sae_lightning.diff.groups import Group
from sae_lightning.diff.scan import scan_group
from sae_lightning.diff.stats import benjamini_hochberg, fisher_two_sided, log_odds_ratio
from sae_lightning.errors import UserError
from sae_lightning.models import build_sae, sae_config

from .cli_runner import Result, run_script

UP_IN_A, UP_IN_B = list(range(0, 5)), list(range(5, 10))


def planted_rates(n_features: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per feature, its firing rate in A and in B: equal for all but the planted features."""
    base = rng.uniform(0.02, 0.4, n_features)
    rate_a, rate_b = base.copy(), base.copy()
    rate_a[UP_IN_A], rate_b[UP_IN_A] = 0.35, 0.05
    rate_a[UP_IN_B], rate_b[UP_IN_B] = 0.04, 0.30
    return rate_a, rate_b


def group_of(name: str, X: np.ndarray) -> Group:
    def batches(size: int):
        for s in range(0, len(X), size):
            yield X[s : s + size]

    return Group(name, np.array([f"{name} text {i}" for i in range(len(X))]), np.array([name] * len(X)), batches)


def test_planted_features_found_through_a_real_sae_with_direction_and_significance():
    """A ReLU SAE whose feature i fires exactly when embedding dimension i is positive; group
    embeddings drawn so that features 0-4 fire more in A and 5-9 more in B, the other 30 alike."""
    d, n = 40, 400
    rng = np.random.default_rng(0)
    rate_a, rate_b = planted_rates(d, rng)
    sae = build_sae(sae_config(architecture="relu", d_in=d, d_sae=d))
    with torch.no_grad():
        sae.W_enc.copy_(torch.eye(d))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    XA = np.where(rng.random((n, d)) < rate_a, 1.0, -1.0).astype(np.float32)
    XB = np.where(rng.random((n, d)) < rate_b, 1.0, -1.0).astype(np.float32)
    a, b = group_of("A", XA), group_of("B", XB)
    scans = scan_group(sae, a, examples=2, batch_size=64), scan_group(sae, b, examples=2, batch_size=64)
    assert np.array_equal(scans[0].fire_counts, (XA > 0).sum(0)) and scans[0].n == n
    table = diff_table(scans[0].fire_counts, n, scans[1].fire_counts, n, "A", "B", DiffSettings()).set_index(
        "feature_id"
    )
    sep = table[table["separating"]]
    assert set(sep.index) == set(UP_IN_A + UP_IN_B)  # all planted found, no null feature reported
    assert (sep.loc[UP_IN_A, "more_in"] == "A").all() and (sep.loc[UP_IN_B, "more_in"] == "B").all()
    assert (sep.loc[UP_IN_A, "log_odds_low"] > 0).all() and (sep.loc[UP_IN_B, "log_odds_high"] < 0).all()
    assert (sep["q_value"] < 1e-6).all()
    # the examples of a planted feature are texts of its own group where it fired
    row = scans[0].top_rows[0]
    assert all(XA[r, 0] > 0 for r in row if r >= 0)


def test_false_discoveries_stay_under_alpha_over_many_draws():
    """200 null features and 10 planted, 40 draws: every planted feature is found each time, and
    the share of null features among the reported ones averages below alpha (what BH promises)."""
    rng = np.random.default_rng(1)
    rate_a, rate_b = planted_rates(210, rng)
    n, fdp = 300, []
    for _ in range(40):
        ca, cb = rng.binomial(n, rate_a), rng.binomial(n, rate_b)
        t = diff_table(ca, n, cb, n, "A", "B", DiffSettings(min_log_odds=0.0)).set_index("feature_id")
        found = set(t.index[t["separating"]])
        assert set(UP_IN_A + UP_IN_B) <= found
        fdp.append(len(found - set(UP_IN_A + UP_IN_B)) / len(found))
    assert np.mean(fdp) < 0.05


def test_statistics_agree_with_scipy_and_hand_computation():
    a, c, n_a, n_b = np.array([0, 3, 17, 40]), np.array([9, 3, 2, 41]), 60, 80
    p = fisher_two_sided(a, n_a, c, n_b)
    for i in range(len(a)):
        table = [[a[i], n_a - a[i]], [c[i], n_b - c[i]]]
        one_sided = min(
            stats.fisher_exact(table, alternative="less")[1], stats.fisher_exact(table, alternative="greater")[1]
        )
        assert p[i] == pytest.approx(min(1.0, 2 * one_sided), rel=1e-9)
    # groups of a default run's size, tails down to 1e-80 and a feature that fires everywhere
    big_a, big_c = np.array([1200, 3, 0, 2372, 40]), np.array([10, 100, 0, 2178, 35])
    dist = stats.hypergeom(2372 + 2178, big_a + big_c, 2372)
    expected = np.minimum(1.0, 2 * np.minimum(dist.cdf(big_a), dist.sf(big_a - 1)))
    assert fisher_two_sided(big_a, 2372, big_c, 2178) == pytest.approx(expected, rel=1e-9)
    lor, lo, hi = log_odds_ratio(a, n_a, c, n_b, 0.05)
    expected = np.log((0.5 * 71.5) / (60.5 * 9.5))  # feature 0: a=0, b=60, c=9, d=71, each +0.5
    se = np.sqrt(1 / 0.5 + 1 / 60.5 + 1 / 9.5 + 1 / 71.5)
    assert lor[0] == pytest.approx(expected) and hi[0] - lor[0] == pytest.approx(1.959964 * se, rel=1e-5)
    p_many = np.random.default_rng(2).random(50) ** 2
    assert np.allclose(benjamini_hochberg(p_many), stats.false_discovery_control(p_many, method="bh"))


# ---- the command on a small real run ------------------------------------------------------------


def sae_diff(*args, check: bool = True) -> Result:
    """sae-diff run in this process (cli_runner)."""
    res = run_script("sae-diff", *args)
    if check:
        assert res.code == 0, res.err
    return res


def test_cli_end_to_end_on_a_real_run(tiny_labelled_run, tmp_path):
    """`python -m sae_lightning.diff` (the command before its console script is installed), as a process."""
    out = tmp_path / "mh"
    args = [tiny_labelled_run, "Mathematics", "History", "--out", out, "--top", 5]
    res = subprocess.run([sys.executable, "-m", "sae_lightning.diff", *map(str, args)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "Mathematics (" in res.stdout and "features separate them" in res.stdout and "more in History:" in res.stdout
    table = pd.read_parquet(out / "diff.parquet")
    csv = pd.read_csv(out / "diff.csv")
    assert len(table) == len(csv) == 128 and table["feature_id"].is_unique
    sep = table[table["separating"]]
    assert len(sep) > 0 and set(sep["more_in"]) <= {"Mathematics", "History"}
    assert (sep["q_value"] < 0.05).all() and (sep["log_odds"].abs() >= 1.0).all()
    labels = pd.read_parquet(tiny_labelled_run / "features.parquet", columns=["feature_id", "label"]).set_index(
        "feature_id"
    )
    first = sep.iloc[0]
    assert first["label"] == labels.loc[first["feature_id"], "label"]
    side = "examples_a" if first["more_in"] == "Mathematics" else "examples_b"
    assert len(first[side]) > 0
    html = (out / "diff.html").read_text()
    assert "<svg" in html and "http" not in html.replace("http-equiv", "")  # self-contained, no network
    summary = json.loads((out / "summary.json").read_text())
    assert summary["separating"] == len(sep) and summary["n_a"] + summary["n_b"] > 300
    assert not list(tmp_path.glob(".*tmp*"))


def test_default_output_folder_and_the_domain_matrix(tiny_labelled_run, tmp_path):
    run = tmp_path / "run"  # a copy: the shared fixture's folder stays as training left it
    shutil.copytree(tiny_labelled_run, run, ignore=shutil.ignore_patterns("checkpoints", "wandb"))
    sae_diff(run, "Mathematics", "Arts,History")
    assert (run / "diff" / "Mathematics-vs-Arts_History" / "diff.html").is_file()
    res = sae_diff(run, "-m")
    matrix = pd.read_parquet(run / "diff" / "matrix" / "matrix.parquet").set_index("domain")
    assert list(matrix.index) == ["Arts", "History", "Mathematics"]
    assert (np.diag(matrix.to_numpy()) == 0).all() and (matrix.to_numpy() == matrix.to_numpy().T).all()
    single = pd.read_parquet(run / "diff" / "Mathematics-vs-Arts_History" / "diff.parquet")
    assert "features separating each pair" in res.out and (matrix.to_numpy() > 0).any()
    assert "<svg" in (run / "diff" / "matrix" / "matrix.html").read_text()
    assert single["separating"].sum() > 0


def test_a_text_source_group_is_embedded_with_the_runs_model(tiny_labelled_run, tmp_path):
    settings = DiffSettings(min_texts=10)
    res = diff_groups(tiny_labelled_run, "domain=wiki_physical_sciences domain.limit=40", "History", settings)
    assert res.n_a == 40 and res.a == "wiki_physical_sciences" and res.table["separating"].any()


@pytest.mark.parametrize(
    "groups, message",
    [
        (
            ["Astrology", "History"],
            r"group 'Astrology' matches no texts: the run's store has the domains Arts, History, Mathematics",
        ),
        (["Mathematics,History", "History"], r"the groups overlap: domain 'History' is in both"),
        ([",", "History"], r"^error: an empty group: give a domain of the run's store"),  # was a group ''
        (["A" * 100000, "History"], r"^error: group 'A{80}\.\.\.' matches no texts"),  # the line held all of it
        (["Mathematics", "History", "--min-texts", "100000"], r"has \d+ texts, fewer than the 100000 the test needs"),
        # settings a group has no use for were composed and then ignored; a typo in its domain too
        (["domain=wiki_history sae=relu", "Mathematics"], r"group 'domain=wiki_history sae=relu': sae is no setting"),
        (["domain=wiki_history embedder.batch_size=0", "Mathematics"], r"embedder.batch_size is no setting of a"),
        (["domain=wiki_history +foo=1", "Mathematics"], r"': foo is no setting of a group, .* drop it$"),
        (["domain=wiki_history +domain.limt=5", "Mathematics"], r"^error: domain.limt is not a setting \(the domain"),
        (["domain=wiki_history domain.limit=0", "Mathematics"], r"^error: domain.limit=0 is invalid; set domain.limit"),
        # tracebacks: an interpolation that does not resolve, a quote left open
        (["domain=files domain.path=${oc.env:NO_SUCH_VAR}", "History"], r"^error: domain.path cannot be resolved"),
        (["domain=files domain.path='x.csv", "History"], r"cannot be read \(No closing quotation\); close its quotes$"),
    ],
)
def test_bad_groups_are_one_line_and_write_nothing(tiny_labelled_run, tmp_path, groups, message):
    res = sae_diff(tiny_labelled_run, *groups, "--out", tmp_path / "x", check=False)
    assert res.code == 2 and res.err.strip().count("\n") == 0, res.err
    assert re.search(message, res.err), res.err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("blocker", ["file", "dead link"])
def test_a_runs_diff_folder_that_cannot_hold_the_output_is_refused_before_the_analysis(
    blocker, tiny_labelled_run, tmp_path
):
    """Without --out the diff goes to <run>/diff/<a>-vs-<b>/: a file or a link to nothing in the
    place of <run>/diff failed only after the whole analysis, a dead link as 'File exists'."""
    run = tmp_path / "run"
    shutil.copytree(tiny_labelled_run, run, symlinks=True)
    if blocker == "file":
        (run / "diff").write_text("mine")
        says = f"{run / 'diff'} is a file, not a folder, so {run / 'diff'} cannot be the output folder; change --out"
    else:
        (run / "diff").symlink_to(tmp_path / "gone")
        says = f"{run / 'diff'} is a link to {tmp_path / 'gone'}, which does not exist; create that folder"
    res = sae_diff(run, "Mathematics", "History", check=False)
    assert res.code == 2 and res.error_lines[0].startswith(f"error: {says}"), res.err
    assert len(res.error_lines) == 1 and not (tmp_path / "gone").exists()


def test_a_source_group_sharing_texts_with_the_other_side_overlaps(tiny_labelled_run, tmp_path):
    meta = pd.read_parquet(json.loads((tiny_labelled_run / "run.json").read_text())["store_path"] + "/metadata.parquet")
    meta[meta["domain"] == "History"].head(30).to_csv(tmp_path / "h.csv", index=False)
    with pytest.raises(UserError, match=r"the groups overlap: 30 texts are in both"):
        diff_groups(tiny_labelled_run, f"domain=files domain.path={tmp_path / 'h.csv'}", "History")


def test_a_group_from_another_model_is_refused_naming_both(tiny_labelled_run, tmp_path):
    np.save(tmp_path / "e.npy", np.zeros((30, 384), np.float32))
    spec = f"domain=npy domain.path={tmp_path / 'e.npy'} domain.model_name=BAAI/bge-small-en-v1.5"
    with pytest.raises(
        UserError, match=r"encoded by BAAI/bge-small-en-v1.5 but .* trained on sentence-transformers/all-MiniLM-L6-v2"
    ):
        diff_groups(tiny_labelled_run, spec, "History")


def test_an_unfinished_run_is_refused(tiny_labelled_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_labelled_run / "sae", run / "sae")
    shutil.copy(tiny_labelled_run / "run.json", run / "run.json")
    res = sae_diff(run, "Mathematics", "History", check=False)
    assert res.code == 2 and "is not a finished run (missing metrics.json)" in res.err
    assert not (run / "diff").exists()
    # a file given for the run said it "does not exist"
    res = sae_diff(run / "run.json", "Mathematics", "History", check=False)
    assert res.code == 2 and f"error: {run / 'run.json'} is a file, not a run folder; give a run folder" in res.err


def test_labels_verdicts_and_coherence_come_from_the_labelling_and_stay_blank_without_one(tiny_labelled_run, tmp_path):
    from sae_lightning.diff.analysis import feature_info

    df = pd.read_parquet(tiny_labelled_run / "features.parquet")
    real = feature_info(tiny_labelled_run, 128).set_index("feature_id")
    assert set(real["verdict"]) <= {"interpretable", "mixed", "weak", "dead"}
    # a mixed feature's label, as the tables show it, says so itself ("mixed: …"), never a bare list
    mixed = real.loc[real["verdict"] == "mixed", "label"]
    assert len(mixed) and all(lab.startswith("mixed: ") for lab in mixed if lab)
    assert np.allclose(real.loc[df["feature_id"], "coherence"], df["coherence"], equal_nan=True)
    (tmp_path / "unlabelled").mkdir()  # no labelling: blanks, not errors
    bare = feature_info(tmp_path / "unlabelled", 128)
    assert (bare["verdict"] == "").all() and (bare["label"] == "").all() and bare["label_score"].isna().all()


def test_the_forest_plot_alone_is_the_pages_plot(tiny_labelled_run, tmp_path):
    """docs/study/tables.py puts the forest plot into Markdown: the same SVG the page draws."""
    from sae_lightning.diff.page import forest_svg

    out = tmp_path / "mh"
    res = sae_diff(tiny_labelled_run, "Mathematics", "History", "--out", out, "--top", 5)
    sep = pd.read_parquet(out / "diff.parquet").query("separating")
    # the listing notes a verdict only where its label does not say it, as sae-search's does
    listed = [line for line in res.out.splitlines() if line.startswith("  #")]
    assert listed and not any(line.endswith("(interpretable)") for line in listed)
    svg = forest_svg(sep.head(6), "Mathematics", "History")
    assert svg.startswith("<svg") and svg.count("<circle") + svg.count("<rect") >= 1
    assert forest_svg(sep.head(0), "Mathematics", "History") == ""
