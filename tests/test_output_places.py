"""Where a command's new output may go: never inside a run's folder (but sae-diff's own diff/),
never inside the embedding cache, never into a folder of yours or an old run's (sae-train's
run_dir=, hydra.run.dir=, hydra.sweep.dir=). Each is refused in one line before any work, and the
folder it named is left byte for byte. docs/reference/reliability.md lists them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from .cli_runner import run_script, wrote_nothing
from .test_one_line_errors import TINY, _npy, refused, train
from .test_run_safety import snapshot

ENV = {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}


@pytest.fixture(scope="module")
def npy_run(tmp_path_factory) -> Path:
    """A finished tiny run on precomputed embeddings: an old run to point new ones at."""
    tmp = tmp_path_factory.mktemp("old_run")
    assert train(tmp, f"run_dir={tmp / 'run'}").code == 0
    return tmp / "run"


def test_an_out_inside_a_run_or_the_store_cache_is_refused_before_any_work(tiny_labelled_run, tmp_path):
    """sae-diff, sae-compare and sae-export wrote their folder into another run (or the same run's
    labelings/), into a store, or into the cache's stores/ folder: the run then held files no
    reader knows, and the output went with the store when the cache was cleared."""
    run = Path(shutil.copytree(tiny_labelled_run, tmp_path / "run", symlinks=True))
    other = Path(shutil.copytree(tiny_labelled_run, tmp_path / "other", symlinks=True))
    store = Path(json.loads((run / "run.json").read_text())["store_path"])
    before = {p: snapshot(p) for p in (run, other, store.parent)}
    commands = {
        "sae-diff": [run, "Mathematics", "History"],
        "sae-compare": [run, other],
        "sae-export": [run, "--to", "sentence-transformers"],
    }
    for exe, args in commands.items():
        for out, inside in (
            (other / "x", f"inside the run {other}"),
            (run / "labelings" / "x", f"inside the run {run}"),
            (store / "x", f"inside the embedding cache ({store})"),
            (store.parent / "x", f"inside the embedding cache ({store.parent})"),
        ):
            res = run_script(exe, *args, "--out", out, env=ENV)
            assert refused(res, f"{out} is {inside}"), (exe, res.err[-2000:])
            assert "change --out to a folder outside it" in res.err
    assert {p: snapshot(p) for p in before} == before
    # sae-diff's own place stays its own: <run>/diff/<any name>
    res = run_script("sae-diff", run, "Mathematics", "History", "--out", run / "diff" / "mine", env=ENV)
    assert res.code == 0 and (run / "diff" / "mine" / "diff.html").is_file(), res.err[-2000:]


def test_a_new_run_into_a_folder_of_yours_or_an_old_runs_is_refused_before_hydra_writes(npy_run, tmp_path):
    """hydra.run.dir=<a finished run> was refused only after the store step, with its cli.log
    appended and a fix naming run_dir; run_dir= or hydra.run.dir= a folder of yours (or `.`) got
    the run's files mixed into its own."""
    old = Path(shutil.copytree(npy_run, tmp_path / "old", symlinks=True))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("precious")
    before = {p: snapshot(p) for p in (old, mine)}
    res = train(tmp_path, f"hydra.run.dir={old}")
    assert refused(res, f"{old} already holds a run (it has checkpoints/)"), res.err[-2000:]
    assert res.err.rstrip().endswith("or change hydra.run.dir") and "store ready" not in res.err
    for setting in ("hydra.run.dir", "run_dir"):
        res = train(tmp_path, f"{setting}={mine}")
        assert refused(res, f"{mine} holds files that are not a run's (thesis.txt)"), res.err[-2000:]
        assert res.err.rstrip().endswith(f"a new run goes into a new or empty folder: change {setting}")
    assert {p: snapshot(p) for p in before} == before
    (tmp_path / "empty").mkdir()
    assert train(tmp_path, f"run_dir={tmp_path / 'empty'}").code == 0  # an empty folder is a new run's


def test_a_sweep_into_a_folder_that_holds_anything_is_refused_before_hydra_writes(npy_run, tmp_path):
    """A multirun into an earlier sweep's folder rewrote multirun.yaml and each earlier job's
    .hydra/ (the record of how that run was made: sae.k=5 for a run trained with k=4) and cli.log
    before every job refused its folder."""
    sweep = tmp_path / "sweep"
    shutil.copytree(npy_run, sweep / "0_npy", symlinks=True)
    (sweep / "multirun.yaml").write_text("the earlier sweep's\n")
    before = snapshot(sweep)
    where = [f"paths.log_dir={tmp_path / 'out'}", f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={sweep}"]
    res = run_script("sae-train", "-m", "domain=npy", f"domain.path={_npy(tmp_path)}", *TINY, *where, "sae.k=2,3")
    assert refused(res, f"hydra.sweep.dir={sweep} holds 0_npy, multirun.yaml"), res.err[-2000:]
    assert "change hydra.sweep.dir" in res.err and snapshot(sweep) == before
    assert wrote_nothing(tmp_path / "out", tmp_path / "cache")


def test_a_file_that_is_no_checkpoint_is_refused_before_the_store_is_made(tmp_path):
    """ckpt_path=<not a checkpoint> was refused only after the store was embedded (hours for a
    corpus), and named torch's weights_only default instead of the file."""
    garbage = tmp_path / "notes.ckpt"
    garbage.write_text("not a checkpoint")
    np.save(tmp_path / "emb.npy", np.random.default_rng(0).standard_normal((200, 16)).astype(np.float32))
    res = train(tmp_path, f"ckpt_path={garbage}")
    assert refused(res, f"{garbage} is not a readable checkpoint (not a file torch.save wrote)"), res.err[-2000:]
    assert "weights_only" not in res.err and wrote_nothing(tmp_path / "cache", tmp_path / "out")


def test_sae_labels_log_never_goes_into_a_run_or_a_folder_of_yours(tiny_labelled_run, tmp_path):
    """hydra.run.dir=<the run it labels> appended the relabel's log to the training's cli.log, and a
    folder of yours got a cli.log; an earlier log folder (Hydra's files only) is written again."""
    run = Path(shutil.copytree(tiny_labelled_run, tmp_path / "run", symlinks=True))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("precious")
    before = {p: snapshot(p) for p in (run, mine)}
    for folder, holds in ((run, "checkpoints, current, families.parquet, ..."), (mine, "thesis.txt")):
        res = run_script("sae-label", f"run_dir={run}", f"hydra.run.dir={folder}", env=ENV)
        assert refused(res, f"hydra.run.dir={folder} holds {holds}, and this command writes only its log"), res.err
    assert {p: snapshot(p) for p in before} == before


def test_the_api_never_trains_into_a_folder_of_yours(tmp_path):
    """sl.train_sae(x, output_dir=<a folder of yours>) wrote the run among your files, as
    sae-train run_dir= did."""
    import sae_lightning as sl
    from sae_lightning.errors import UserError

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("precious")
    x = np.random.default_rng(0).standard_normal((200, 16)).astype(np.float32)
    with pytest.raises(UserError, match=r"holds files that are not a run's \(thesis.txt\); .*: change output_dir$"):
        sl.train_sae(x, output_dir=mine, paths={"cache_dir": str(tmp_path / "cache")})
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.txt"] and wrote_nothing(tmp_path / "cache")


@pytest.mark.parametrize(
    "command, setting, says",
    [
        # sae-label's log folder: only hydra.run.dir=<run> was refused, not paths.log_dir=<run>/logs
        ("sae-label", "paths.log_dir={run}/logs", "{run}/logs/label/runs/"),
        # the cache in a run, or the run itself: every store built after it went into the run
        ("sae-train", "paths.cache_dir={run}", "{run}/stores is inside the run {run}, "),
        ("sae-embed", "paths.cache_dir={run}/cache", "{run}/cache/stores is inside the run {run}, "),
        # a run's folder in the cache: deleted with a store, or mixed into the cache's stores/
        ("sae-train", "paths.log_dir={cache}/stores", "{cache}/stores/train/runs/npy/"),
    ],
)
def test_logs_runs_and_the_cache_never_go_into_a_run_or_the_cache(command, setting, says, npy_run, tmp_path):
    run = Path(shutil.copytree(npy_run, tmp_path / "run", symlinks=True))
    cache = npy_run.parent / "cache"  # the store npy_run was trained from
    before = {p: snapshot(p) for p in (run, cache)}
    where = {"run": run, "cache": cache}
    args = [f"run_dir={run}"] if command == "sae-label" else ["domain=npy", f"domain.path={_npy(tmp_path)}", *TINY]
    defaults = [f"paths.log_dir={tmp_path / 'out'}", f"paths.cache_dir={tmp_path / 'cache'}"]
    res = run_script(command, *args, *defaults[command == "sae-label" :], setting.format(**where), env=ENV)
    assert refused(res, says.format(**where)), res.err[-2000:]
    assert "to a folder outside it" in res.err and {p: snapshot(p) for p in before} == before
    assert wrote_nothing(tmp_path / "out", tmp_path / "cache")


@pytest.mark.parametrize(
    "setting, says",
    [
        # mkdir tracebacks (FileExistsError, FileNotFoundError) from Hydra's sweep launcher, exit 1
        ("hydra.sweep.dir={file}", "{file} is a file, not a folder, so {file} cannot be the output folder"),
        ("hydra.sweep.dir=/proc/sae-lightning-x", "cannot create /proc/sae-lightning-x (No such file or directory"),
        # the sweep folder (multirun.yaml, each job's .hydra/) went into the run; each job refused naming run_dir
        ("paths.log_dir={run}/sweeps", "{run}/sweeps/train/multiruns/"),
        ("paths.cache_dir={run}/cache", "{run}/cache/stores is inside the run {run}, "),
    ],
)
def test_a_sweeps_folders_are_checked_before_hydra_makes_them(setting, says, npy_run, tmp_path):
    run = Path(shutil.copytree(npy_run, tmp_path / "run", symlinks=True))
    (tmp_path / "afile").write_text("mine")
    where = {"run": run, "file": tmp_path / "afile"}
    before = snapshot(run)
    places = [f"paths.log_dir={tmp_path / 'out'}", f"paths.cache_dir={tmp_path / 'cache'}"]
    res = run_script(
        "sae-train",
        "-m",
        "domain=npy",
        f"domain.path={_npy(tmp_path)}",
        *TINY,
        *places,
        setting.format(**where),
        "sae.k=2,3",
    )
    assert refused(res, says.format(**where)), res.err[-2000:]
    assert snapshot(run) == before and (tmp_path / "afile").read_text() == "mine"
    assert wrote_nothing(tmp_path / "out", tmp_path / "cache")


def test_a_swept_store_cache_inside_a_run_fails_that_job_only(npy_run, tmp_path):
    """A cache among a sweep's values is known only to its job, which built its store in the run."""
    run = Path(shutil.copytree(npy_run, tmp_path / "run", symlinks=True))
    before = snapshot(run)
    caches = f"paths.cache_dir={tmp_path / 'cache'},{run / 'cache'}"
    res = run_script(
        "sae-train",
        "-m",
        "domain=npy",
        f"domain.path={_npy(tmp_path)}",
        *TINY,
        f"paths.log_dir={tmp_path / 'out'}",
        caches,
    )
    assert res.code == 2 and res.error_lines[-1].endswith(
        f"{run / 'cache' / 'stores'} is inside the run {run}, whose folder holds only its own files; "
        "change paths.cache_dir to a folder outside it"
    ), res.err[-2000:]
    assert snapshot(run) == before and list((tmp_path / "cache" / "stores").iterdir())
