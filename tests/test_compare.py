"""sae-compare: matching features across per-domain SAEs, on runs trained by the real pipeline."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sae_lightning.compare import compare_runs, write_comparison
from sae_lightning.compare.write import FILES
from sae_lightning.errors import UserError
from sae_lightning.models import SAEConfig, build_sae
from sae_lightning.pipeline import train

from .cli_runner import run_script
from .conftest import compose_cfg
from .helpers import write_labelled_run

QUIET = ["logger=none", "labeling.enabled=false", "trainer.enable_progress_bar=false"]
N_SHARED, N_ONLY, D_IN = 8, 8, 48


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Two synthetic "domains" built from one known dictionary: N_SHARED directions occur in both,
    N_ONLY in domain A only and N_ONLY in domain B only. Each row is a positive mix of 3 of its
    domain's directions. Returns {domain: npy path} and the directions by role."""
    rng = np.random.default_rng(0)
    dirs = rng.standard_normal((N_SHARED + 2 * N_ONLY, D_IN))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    roles = {
        "shared": np.arange(N_SHARED),
        "A": N_SHARED + np.arange(N_ONLY),
        "B": N_SHARED + N_ONLY + np.arange(N_ONLY),
    }
    root = tmp_path_factory.mktemp("planted")
    paths = {}
    for dom in ("A", "B"):
        pool = np.concatenate([roles["shared"], roles[dom]])
        support = np.argsort(rng.random((1500, len(pool))), axis=1)[:, :3]  # 3 distinct per row
        x = np.einsum("na,nad->nd", 0.5 + rng.random((1500, 3)), dirs[pool[support]])
        paths[dom] = root / f"{dom}.npy"
        np.save(paths[dom], x.astype(np.float32))
    return paths, dirs, roles


def train_run(overrides: list[str], out: Path, cache: Path) -> Path:
    train(compose_cfg([*overrides, *QUIET], out, cache))
    return out


@pytest.fixture(scope="module")
def planted_runs(planted, tmp_path_factory, cache_dir):
    paths, _, _ = planted
    sweep = tmp_path_factory.mktemp("sweep")
    for i, dom in enumerate(("A", "B")):
        train_run(
            [
                "domain=npy",
                f"domain.path={paths[dom]}",
                f"domain.domain={dom}",
                "domain.model_name=synthetic",
                "sae=topk",
                "sae.d_sae=32",
                "sae.k=3",
                "data.batch_size=48",
                "trainer.max_epochs=6",
                "module.lr=0.006",
                "module.warmup_steps=30",
            ],
            sweep / f"{i}_{dom}",
            cache_dir,
        )
    return sweep


def test_planted_shared_and_domain_only_directions_are_classified(planted, planted_runs, caplog):
    _, dirs, roles = planted
    (planted_runs / "2_C").mkdir()
    (planted_runs / "2_C" / "run.json").write_text("{}")  # a job of the sweep that never finished
    result = compare_runs([planted_runs])  # the sweep dir: its subfolders are the runs
    assert result.names == ["A", "B"]
    assert any("skipping" in r.message and "2_C" in r.message for r in caplog.records)
    assert not result.warnings  # trained long enough: the rows left their (shared) init
    feats = result.features
    for run in result.runs:
        own = run.name
        table = feats[feats["run"] == own].set_index("feature_id")
        cos = dirs @ run.W_dec.T  # [planted, d_sae]
        for role in ("shared", own):  # at most one planted direction of each kind may go astray
            learned = cos[roles[role]].max(1) > 0.9
            assert learned.sum() >= len(learned) - 1, f"{own}: {role} directions not learned"
            classes = table.loc[cos[roles[role]].argmax(1)[learned], "class"]
            want = "universal" if role == "shared" else "specific"
            assert (classes == want).sum() >= len(classes) - 1, f"{own} {role}: {classes.value_counts().to_dict()}"
    # The one-to-one pairs above the threshold are the shared directions (A's and B's own never pair).
    assert N_SHARED - 1 <= result.matches["matched"].sum() <= N_SHARED + 2
    a = feats[(feats["run"] == "A") & ~feats["dead"]]
    assert result.overlap[0, 1] == pytest.approx((a["best_match_cos"] >= 0.7).mean())


def test_a_default_out_through_a_link_to_nothing_is_refused_not_followed(planted_runs, tmp_path):
    """Without --out a comparison of run dirs goes to ./outputs/compare/<time>/: with ./outputs a
    link to a folder that is gone (an unmounted disk) the link was followed and its target made,
    where every Hydra command refuses it in one line."""
    (tmp_path / "outputs").symlink_to(tmp_path / "gone")
    env = {"SAE_LIGHTNING_OUTPUTS": ""}
    res = run_script("sae-compare", planted_runs / "0_A", planted_runs / "1_B", cwd=tmp_path, env=env)
    assert res.code == 2 and res.err.strip().splitlines() == [
        f"error: {tmp_path / 'outputs'} is a link to {tmp_path / 'gone'}, which does not exist; "
        "create that folder, remove the link or change --out"
    ], res.err
    assert not (tmp_path / "gone").exists()


def test_the_default_out_is_this_commands_own_folder(planted_runs, tmp_path):
    """Named by the time alone, sae-compare commands ending in the same second (three of one pair
    and three of another, started together by a script) all printed one folder, whose files were
    each one's or another's; the folder is named like a run folder now, <time>_<pid>-<random>."""
    res = run_script(
        "sae-compare", planted_runs / "0_A", planted_runs / "1_B", cwd=tmp_path, env={"SAE_LIGHTNING_OUTPUTS": ""}
    )
    assert res.code == 0, res.err[-3000:]
    (folder,) = (tmp_path / "outputs" / "compare").iterdir()
    assert re.fullmatch(rf"\d{{4}}-\d\d-\d\d_\d\d-\d\d-\d\d_{os.getpid()}-[0-9a-f]{{4}}", folder.name), folder.name
    assert f"page: {folder.resolve() / 'compare.html'}" in res.out


def test_a_comparison_into_an_earlier_ones_folder_leaves_none_of_its_tables(planted_runs, tiny_labelled_run, tmp_path):
    """--out an earlier comparison's folder: its files are replaced, but a joint run's
    domain_counts.* stayed beside a comparison that has none, as if they were its own."""
    out = tmp_path / "cmp"
    assert run_script("sae-compare", tiny_labelled_run, "--out", out).code == 0
    assert (out / "domain_counts.csv").is_file()
    res = run_script("sae-compare", planted_runs / "0_A", planted_runs / "1_B", "--out", out)
    assert res.code == 0, res.err[-3000:]
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES - {"domain_counts.csv", "domain_counts.parquet"})


def test_a_full_disk_mid_comparison_leaves_no_tables_and_the_earlier_comparison_whole(tiny_labelled_run, tiny_disk):
    """A full disk (or a kill) mid-write left a new --out with some tables and no compare.html, and
    an earlier comparison in --out with this one's first tables beside its own page: the files
    were written one by one. The comparison is now written in a temp folder and renamed whole."""
    earlier = tiny_disk / "cmp"
    assert run_script("sae-compare", tiny_labelled_run, "--out", earlier).code == 0
    kept = {p.name: (p.stat().st_ino, p.read_bytes()) for p in earlier.iterdir()}
    free = os.statvfs(tiny_disk)
    with open(tiny_disk / "filler", "wb") as fill:  # room for matches.parquet (2 pages), not for all
        fill.write(b"x" * (free.f_bavail * free.f_frsize - 2 * 4096))
    for out in (tiny_disk / "new", earlier):
        res = run_script("sae-compare", tiny_labelled_run, "--out", out)
        assert res.code == 2 and res.err.startswith(f"error: disk full while writing {out} ("), res.err
        assert "nothing was left half-written" in res.err
    assert not (tiny_disk / "new").exists()
    assert {p.name: (p.stat().st_ino, p.read_bytes()) for p in earlier.iterdir()} == kept
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["cmp", "filler"], "no temp folder is left"


def test_sae_compare_command_writes_tables_and_page(planted_runs, tmp_path):
    out = tmp_path / "cmp"
    res = run_script("sae-compare", planted_runs / "0_A", planted_runs / "1_B", "--out", out)
    assert res.code == 0, res.err[-3000:]
    assert "A: universal" in res.out and "compare.html" in res.out
    for name in (
        "matches.parquet",
        "matches.csv",
        "feature_classes.parquet",
        "feature_classes.csv",
        "compare.json",
        "compare.html",
    ):
        assert (out / name).is_file(), name
    matches = pd.read_parquet(out / "matches.parquet")
    assert set(matches["run_a"]) == {"A"} and set(matches["run_b"]) == {"B"}
    assert matches["cos"].between(-1, 1).all() and len(pd.read_csv(out / "matches.csv")) == len(matches)
    page = (out / "compare.html").read_text()
    for sid in ("runs", "overlap", "best-match", "classes", "shared", "specific"):
        assert f'id="{sid}"' in page, sid
    assert "<svg" in page and "http" not in page.split("<body>")[1]  # self-contained
    assert json.loads((out / "compare.json").read_text())["overlap"]["runs"] == ["A", "B"]


def test_a_sweep_dir_that_takes_no_files_names_out_as_the_way_out(planted_runs, tmp_path):
    """Its comparison goes into the sweep's own folder by default: a read-only one was "cannot
    create <sweep>/matches.parquet (...); write somewhere you can create files"."""
    from .test_run_safety import snapshot, unwritable

    sweep = Path(shutil.copytree(planted_runs, tmp_path / "sweep", symlinks=True))
    before = snapshot(sweep)
    with unwritable(sweep):
        res = run_script("sae-compare", sweep)
    assert res.code == 2 and res.err.strip().splitlines()[-1].startswith(f"error: cannot write in {sweep} ("), res.err
    assert res.err.rstrip().endswith("change --out (the sweep's own folder is only the default)")
    assert snapshot(sweep) == before


def test_real_runs_with_labels_side_by_side(tmp_path, cache_dir):
    """Two tiny runs on real wiki sentences (Mathematics, History): the table carries the labels
    of features.parquet side by side."""
    runs = []
    for dom in ("wiki_mathematics", "wiki_history"):
        runs.append(
            train_run(
                [
                    f"domain={dom}",
                    "domain.limit=160",
                    "sae=topk",
                    "sae.d_sae=32",
                    "sae.k=4",
                    "data.batch_size=32",
                    "trainer.max_epochs=2",
                ],
                tmp_path / dom,
                cache_dir,
            )
        )
    for run, word in zip(runs, ("math", "hist")):  # stand-in labels: labelling is tested elsewhere
        n = json.loads((run / "sae" / "cfg.json").read_text())["d_sae"]
        write_labelled_run(
            run,
            pd.DataFrame(
                {"feature_id": range(n), "dead": False, "density": 0.1, "label": [f"{word} {i}" for i in range(n)]}
            ),
        )
    result = compare_runs(runs)
    assert result.names == ["Mathematics", "History"]
    # One seed, two epochs: both decoders are still close to the same random init, and it says so.
    (warning,) = result.warnings
    assert "same feature index" in warning and "different seeds" in warning
    row = result.matches.iloc[0]
    assert row["label_a"] == f"math {row['feature_a']}" and row["label_b"] == f"hist {row['feature_b']}"
    files = write_comparison(result, tmp_path / "out")
    page = files["compare.html"].read_text()
    assert "math " in page and "same feature index" in page


def _copy_run(src: Path, dst: Path, edit) -> Path:
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "sae" / "cfg.json").read_text())
    edit(cfg)
    (dst / "sae" / "cfg.json").write_text(json.dumps(cfg))
    return dst


def test_runs_that_cannot_be_compared_say_what_differs(planted_runs, tmp_path):
    a = planted_runs / "0_A"
    other_model = _copy_run(a, tmp_path / "m", lambda c: c["metadata"].update(model_name="other-model"))
    with pytest.raises(UserError, match=r"different embedding models: A \(0_A\): synthetic; A \(m\): other-model"):
        compare_runs([a, other_model])
    wide = tmp_path / "w"
    shutil.copytree(a, wide)
    cfg = json.loads((a / "sae" / "cfg.json").read_text())
    build_sae(SAEConfig.from_dict({**cfg, "d_sae": 64})).save(wide / "sae")
    with pytest.raises(UserError, match=r"different SAE widths \(d_sae\): A \(0_A\): 32; A \(w\): 64"):
        compare_runs([a, wide])
    with pytest.raises(UserError, match=r"compare.shared_fraction=0 is invalid; set compare.shared_fraction to"):
        compare_runs([a, planted_runs / "1_B"], shared_fraction=0)  # the API gets the command's rules
    # a share counted "specific" below the one counted "active" printed more specific features than active ones
    res = run_script("sae-compare", a, "--min-share", "0.9", "--specific-share", "0.5", "--out", tmp_path / "out")
    assert res.code == 2 and res.err.strip().splitlines() == [
        "error: specific_share=0.5 is below min_share=0.9: a domain's own feature also serves it; "
        "raise --specific-share or lower --min-share"
    ], res.err
    assert not (tmp_path / "out").exists()


def test_a_run_given_twice_is_refused_not_dropped(planted_runs, tmp_path):
    """The copy was dropped silently: `sae-compare A A` compared one run, `A B A` two of three."""
    a, b = planted_runs / "0_A", planted_runs / "1_B"
    res = run_script("sae-compare", a, b, a, "--out", tmp_path / "out")
    assert res.code == 2 and res.err.strip().splitlines() == [
        f"error: the run {a.resolve()} is given twice; give each run once: "
        "a run compared with itself shares every feature"
    ], res.err
    assert not (tmp_path / "out").exists()
    (tmp_path / "link").symlink_to(a)
    with pytest.raises(UserError, match=rf"the run {a.resolve()} comes from both {a} and {tmp_path / 'link'}; give"):
        compare_runs([a, tmp_path / "link"])
    with pytest.raises(UserError, match=rf"the run {a.resolve()} comes from both {planted_runs} and {a}; give"):
        compare_runs([planted_runs, a])  # inside the sweep dir given, and named too


def test_sweep_dir_without_finished_runs_is_one_line_error(tmp_path):
    empty = tmp_path / "sweep"
    (empty / "0_x").mkdir(parents=True)
    (empty / "0_x" / "run.json").write_text("{}")  # started, never finished
    res = run_script("sae-compare", empty)
    assert res.code == 2
    err = res.err.strip().splitlines()
    assert err[-1].startswith("error: ") and "holds no finished run" in err[-1] and "1 unfinished" in err[-1]
    with pytest.raises(UserError, match="no finished run"):
        compare_runs([tmp_path / "sweep"])
    with pytest.raises(UserError, match="no such folder"):
        compare_runs([tmp_path / "nope"])
    (tmp_path / "a.txt").write_text("x")  # a file given for a run said "no such folder"
    with pytest.raises(UserError, match=r"a.txt: a file, not a folder; give a sweep dir or run dirs"):
        compare_runs([tmp_path / "a.txt"])


def test_joint_run_reports_features_per_domain(planted_runs, tmp_path):
    """A joint SAE (trained on three domains) is read through its features' domain shares."""
    joint = _copy_run(
        planted_runs / "0_A",
        tmp_path / "joint",
        lambda c: c["metadata"].update(domain="wiki_all", domains=["Arts", "History", "Mathematics"]),
    )
    shares = [
        {"Mathematics": 0.9, "History": 0.1},
        {"History": 0.95, "Arts": 0.05},
        {"Arts": 0.5, "History": 0.5},
        {"Mathematics": 0.6, "Arts": 0.4},
    ] * 8
    write_labelled_run(
        joint,
        pd.DataFrame(
            {
                "feature_id": range(32),
                "dead": [False] * 31 + [True],
                "density": 0.01,
                "label": [f"f{i}" for i in range(32)],
                "domain_shares": [json.dumps(s) for s in shares],
            }
        ),
    )
    result = compare_runs([joint])
    (j,) = result.joint
    counts = j.counts.set_index("domain")[["n_main", "n_active", "n_specific"]]
    # 8 copies of each pattern, the last (Mathematics 0.6 / Arts 0.4) once dead
    assert counts.loc["Mathematics"].tolist() == [8 + 7, 8 + 7, 8]  # n_main, n_active, n_specific
    assert counts.loc["History"].tolist() == [8, 24, 8]
    assert counts.loc["Arts"].tolist() == [8, 8 + 7, 0]  # the 50/50 features go to the first: Arts
    assert j.overlap[j.domains.index("Arts"), j.domains.index("Mathematics")] == 7
    files = write_comparison(result, tmp_path / "out")
    page = files["compare.html"].read_text()
    assert 'id="joint"' in page and 'id="overlap"' not in page  # one run: nothing to match
    assert pd.read_csv(files["domain_counts.csv"])["n_main"].sum() == 31
