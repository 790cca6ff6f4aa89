"""Faults from outside, as they happen to real runs: kill -9 at each stage, Ctrl-C and SIGTERM, two
runs at once, a damaged checkpoint, a resume with other settings, a diverging run. Every process
that is killed or signalled is the real console script; a kill lands when a file it writes appears
(observed from outside). What only has to finish afterwards (a store made first, a resume whose
numbers are not compared bit for bit with a process's) runs in this process (cli_runner)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from sae_lightning.data.store import EmbeddingStore
from sae_lightning.errors import UserError
from sae_lightning.pipeline import train
from sae_lightning.run_dir import RunDir
from sae_lightning.run_reader import finished_run_info

from .cli_runner import Result, run_script
from .conftest import SMALL_TOPICS, compose_cfg
from .helpers import synthetic_npy

BIN = Path(sys.executable).parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
QUIET = ["logger=none", "trainer.enable_progress_bar=false"]
TOPICS = "[" + ",".join(f'"{t}"' for t in SMALL_TOPICS) + "]"
# The conftest's small run: 600 sentences, 540 for training, 4 steps of 128 per epoch.
WIKI = [
    "domain=wiki_all",
    f"domain.topics={TOPICS}",
    "domain.limit=600",
    "sae.d_sae=128",
    "sae.k=8",
    "data.batch_size=128",
    "trainer.max_epochs=3",
    "callbacks.periodic_checkpoint.every_n_train_steps=2",
    *QUIET,
]


def start(cmd: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / cmd), *args],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(cmd: str, *args: str) -> subprocess.CompletedProcess:
    res = subprocess.run([str(BIN / cmd), *args], env=ENV, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    return res


def rerun(cmd: str, *args: object) -> Result:
    """Console script `cmd` run to the end in this process (cli_runner): no new interpreter's imports."""
    res = run_script(cmd, *args)
    assert res.code == 0, res.out[-2000:] + res.err[-3000:]
    return res


def wait_for(proc: subprocess.Popen, ready, timeout: float = 300) -> None:
    """Poll until `ready()`; fail if the process ends first (the kill would then test nothing)."""
    deadline = time.time() + timeout
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} before the fault point: {proc.stderr.read()[-3000:]}")
        assert time.time() < deadline, "the fault point never came"
        time.sleep(0.01)


def kill9_when(proc: subprocess.Popen, ready) -> None:
    wait_for(proc, ready)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def same_results(a: Path, b: Path) -> None:
    """The files of two finished runs agree: weights bit for bit, tables and metrics exactly."""
    for name in ("sae_weights.safetensors", "sparsity.safetensors"):
        wa, wb = load_file(a / "sae" / name), load_file(b / "sae" / name)
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), name
    # Timings, and phrases embedded now rather than found in the store's cache, may differ.
    assert RunDir(a).metrics() == RunDir(b).metrics()
    la, lb = RunDir(a).labeling(), RunDir(b).labeling()
    assert la.settings() == lb.settings()
    untimed = [{k: v for k, v in lab.summary().items() if k != "n_phrases_embedded"} for lab in (la, lb)]
    assert untimed[0] == untimed[1]
    pd.testing.assert_frame_equal(la.read_features(), lb.read_features())
    pd.testing.assert_frame_equal(la.read_families(), lb.read_families())
    assert lb.report.is_file() and lb.summary_md.is_file() and (b / "report.html").is_file()


def resume(run: Path, args: list[str]) -> tuple[str, ...]:
    """The documented way on: sae-train ckpt_path=last until training is exported, then sae-label."""
    if (run / "metrics.json").is_file():
        return ("sae-label", f"run_dir={run}")
    return ("sae-train", *args, "ckpt_path=last")


@pytest.mark.slow
def test_kill9_at_every_stage_then_resume_ends_like_an_uninterrupted_run(tmp_path):
    """The default run (labels, families, report), killed in turn while it embeds, trains (after a
    mid-epoch checkpoint), exports, labels, builds families and writes the report; each time
    resumed the documented way. The end equals one uninterrupted run's, store included."""
    # Shards of 100 texts are embedded in batches unlike the session store's, so the reference has its own.
    reference = tmp_path / "reference"
    finish(
        "sae-train",
        *WIKI,
        f"paths.cache_dir={tmp_path / 'ref_cache'}",
        "embedder.shard_size=100",
        f"run_dir={reference}",
    )

    run, cache = tmp_path / "run", tmp_path / "cache"
    args = [*WIKI, f"paths.cache_dir={cache}", f"run_dir={run}", "embedder.shard_size=100"]
    kill9_when(start("sae-train", *args), lambda: any(cache.glob("stores/*/shards/shard_*.npy")))  # embed
    kill9_when(start("sae-train", *args), lambda: (run / "checkpoints" / "last.ckpt").is_file())  # train
    step = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert 0 < step < 12 and step % 4, f"the kill should land mid-epoch, not at step {step}"
    kill9_when(start(*resume(run, args)), lambda: (run / "sae").is_dir())  # export
    kill9_when(start(*resume(run, args)), lambda: (run / "metrics.json").is_file())  # label
    assert (run / "sae" / "sae_weights.safetensors").is_file(), "the SAE is written before labelling"
    kill9_when(start(*resume(run, args)), lambda: any(run.glob("labelings/.*.tmp/features.parquet")))  # families
    assert RunDir(run).labeling() is None, "a killed labelling is never current"
    kill9_when(start(*resume(run, args)), lambda: any(run.glob("labelings/.*.tmp/labels.json")))  # report
    assert RunDir(run).labeling() is None, "a labelling without its report is never current"
    finish(*resume(run, args))
    assert not list(run.glob("labelings/.*.tmp")), "the killed labellings' temp folders are removed"

    stores = [
        EmbeddingStore(next(p for p in (c / "stores").iterdir() if p.is_dir())) for c in (cache, tmp_path / "ref_cache")
    ]
    assert np.array_equal(np.asarray(stores[0].embeddings), np.asarray(stores[1].embeddings))
    same_results(reference, run)


def test_a_killed_relabel_leaves_the_earlier_labelling_intact_and_current(tiny_labelled_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_labelled_run, run)
    before = RunDir(run).labeling()
    files = {p: p.read_bytes() for p in before.folder.iterdir()}
    top = {n: (run / n).read_bytes() for n in ("features.parquet", "families.parquet", "report.html")}
    kill9_when(
        start("sae-label", f"run_dir={run}", "labeling.top_n=2", f"paths.log_dir={tmp_path / 'logs'}"),
        lambda: any(run.glob("labelings/.*.tmp/features.parquet")),
    )
    assert RunDir(run).labeling().id == before.id
    assert files == {p: p.read_bytes() for p in before.folder.iterdir()}
    assert top == {n: (run / n).read_bytes() for n in top}
    assert RunDir(run).labelings()[0].id == before.id and len(RunDir(run).labelings()) == 1


# ---- small runs on synthetic embeddings (no texts, no model) ------------------------------------


@pytest.fixture(scope="module")
def npy(tmp_path_factory) -> Path:
    return synthetic_npy(tmp_path_factory.mktemp("npy"), n_dirs=64, seed=0)


def npy_args(path: Path, cache: Path) -> list[str]:
    return [
        "domain=npy",
        f"domain.path={path}",
        "sae.d_sae=64",
        "sae.k=4",
        "data.batch_size=64",
        f"paths.cache_dir={cache}",
        *QUIET,
    ]


def test_two_runs_started_together_get_two_folders_and_skip_labelling_without_texts(npy, tmp_path):
    """The README's own form (`sae-train domain=npy domain.path=emb.npy`, labelling on by default),
    twice in the same second: two folders, each with its SAE and metrics, a one-line note, exit 0."""
    args = [*npy_args(npy, tmp_path / "cache"), "trainer.max_epochs=1", f"paths.log_dir={tmp_path / 'out'}"]
    procs = [start("sae-train", *args) for _ in range(2)]
    results = [(p.wait(timeout=600), *p.communicate()) for p in procs]
    for code, out, err in results:
        assert code == 0, err[-3000:]
        assert "has no texts" in out and "not labelled" in out
    folders = sorted((tmp_path / "out" / "train" / "runs" / "npy").iterdir())
    assert len(folders) == 2
    for folder in folders:
        assert (folder / "sae" / "sae_weights.safetensors").is_file() and (folder / "metrics.json").is_file()
        assert not (folder / "features.parquet").exists()


def test_two_runs_pointed_at_one_folder_never_share_it(npy, tmp_path):
    args = [
        *npy_args(npy, tmp_path / "cache"),
        "trainer.max_epochs=1",
        "labeling.enabled=false",
        f"run_dir={tmp_path / 'run'}",
    ]
    # The store first, so both reach the folder at about the same time.
    rerun(
        "sae-embed",
        "domain=npy",
        f"domain.path={npy}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"paths.log_dir={tmp_path / 'logs'}",
    )
    procs = [start("sae-train", *args) for _ in range(2)]
    results = sorted((p.wait(timeout=600), p.communicate()[1]) for p in procs)
    assert [code for code, _ in results] == [0, 2], results
    assert results[1][1].strip().endswith("or leave run_dir unset for a new folder")
    assert "already holds a run" in results[1][1]


def test_a_finished_run_without_checkpoints_is_never_trained_over(npy, tiny_labelled_run, tmp_path):
    """A finished run copied or pruned without checkpoints/ (the claim's only mark) was trained over
    by `sae-train run_dir=<it>`: its weights, metrics.json and run.json replaced by another SAE's,
    its labellings left naming features of the old one."""
    run = Path(shutil.copytree(tiny_labelled_run, tmp_path / "run", symlinks=True))
    shutil.rmtree(run / "checkpoints")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    says = f"{run} already holds a run (it has run.json, sae, metrics.json) and no checkpoints/ to resume it from"
    res = run_script("sae-train", *npy_args(npy, tmp_path / "cache"), f"run_dir={run}", cwd=tmp_path)
    assert res.code == 2 and res.error_lines == [f"error: {says}; leave run_dir unset for a new folder"], res.err
    with pytest.raises(UserError, match=re.escape(says)):  # the claim itself, as the API reaches it
        train(compose_cfg([*npy_args(npy, tmp_path / "cache"), "trainer.max_epochs=1"], run, tmp_path / "cache"))
    assert before == {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "where, setting",
    [("run_dir={run}/checkpoints/new", "run_dir"), ("paths.log_dir={run}", "paths.log_dir, task_name or domain.name")],
)
def test_a_new_run_inside_another_runs_folder_is_refused_before_anything_is_written(
    where, setting, interrupted, tmp_path
):
    """run_dir=<run>/sae (or a paths.log_dir inside a run) wrote a second run into the first one's
    folders: its checkpoints/, sae/, labelings/ and links among the first run's files."""
    run, base, cache = _interrupted_run(interrupted, tmp_path)
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    res = run_script("sae-train", *base, where.format(run=run), cwd=tmp_path)
    assert res.code == 2 and res.error_lines[-1].startswith("error: "), res.err[-2000:]
    assert f"is inside the run {run}, whose folder holds only its own files; change {setting} to a folder" in res.err
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_save_print_the_resume_line_and_exit_non_zero(signum, code, npy, tmp_path):
    run = tmp_path / "run"
    args = [
        *npy_args(npy, tmp_path / "cache"),
        "trainer.max_epochs=4",
        "labeling.enabled=false",
        "callbacks.periodic_checkpoint.every_n_train_steps=5",
        f"run_dir={run}",
    ]
    proc = start("sae-train", *args)
    wait_for(proc, lambda: (run / "checkpoints" / "last.ckpt").is_file())
    os.killpg(proc.pid, signum)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == code, err[-3000:]
    assert (
        err.strip().splitlines()[-1] == f"interrupted by {signal.Signals(signum).name}; resume with: "
        f"sae-train run_dir={run} ckpt_path=last"
    )
    assert not (run / "sae").exists() and not (run / "metrics.json").exists()
    rerun("sae-train", *args, "ckpt_path=last")
    assert RunDir(run).metrics()["epochs"] == 4


@pytest.fixture(scope="module")
def interrupted(npy, tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """An in-process run stopped by a real SIGINT after step 5 (what Ctrl-C leaves behind), made
    once for the tests below: (run, its cache, the run's arguments). Each test works on a copy."""
    folder = tmp_path_factory.mktemp("interrupted")
    run, cache = folder / "run", folder / "cache"
    base = [*npy_args(npy, cache), "trainer.max_epochs=2", "labeling.enabled=false"]
    stop = ["+callbacks.stop._target_=tests.helpers.SignalAtStep", "+callbacks.stop.step=5"]
    with pytest.raises(SystemExit):
        train(compose_cfg(base + stop, run, cache))
    return run, cache, base


def _interrupted_run(interrupted, tmp_path: Path) -> tuple[Path, list[str], Path]:
    """A copy of the interrupted run in tmp_path (a moved run: resuming it is exact, see
    test_a_moved_run_resumed_from_an_epoch_checkpoint_ends_like_an_uninterrupted_one)."""
    run, cache, base = interrupted
    return Path(shutil.copytree(run, tmp_path / "run", symlinks=True)), base, cache


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_a_damaged_last_ckpt_is_one_line_naming_it(damage, interrupted, tmp_path):
    run, base, cache = _interrupted_run(interrupted, tmp_path)
    ckpt = run / "checkpoints" / "last.ckpt"
    data = ckpt.read_bytes()
    ckpt.write_bytes({"empty": b"", "truncated": data[: len(data) // 2], "garbage": os.urandom(4096)}[damage])
    with pytest.raises(UserError, match=rf"^{ckpt} is not a readable checkpoint .*ckpt_path=<that .ckpt>"):
        train(compose_cfg(base + ["ckpt_path=last"], run, cache))


@pytest.mark.parametrize(
    "change,message",
    [
        (["domain=wiki_all", "domain.limit=50"], r"domain=wiki_all \(the run has npy\)"),
        (["sae.d_sae=32"], r"d_sae=32 \(the run has 64\)"),
        (["sae=batchtopk"], r"architecture=batchtopk \(the run has topk\)"),
        # the data a run sees: another split or order would validate on texts it has trained on
        (["seed=1"], r"seed=1 \(the run has 0\)"),
        (["data.val_fraction=0.2"], r"val_fraction=0.2 \(the run has 0.1\)"),
        (["data.shuffle=blocks"], r"shuffle=blocks \(the run has auto\)"),
        (["data.drop_last=false"], r"drop_last=False \(the run has True\)"),
    ],
)
def test_resume_with_other_settings_is_refused_in_one_line(change, message, interrupted, tmp_path):
    run, base, cache = _interrupted_run(interrupted, tmp_path)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and ".hydra" not in p.parts}
    if change[0].startswith("domain="):  # another domain: none of the npy domain's settings
        base = [a for a in base if not a.startswith("domain")]
    with pytest.raises(UserError, match=rf"^cannot resume {run}: {message}; resume with the run's own settings"):
        train(compose_cfg(base + change + ["ckpt_path=last"], run, cache))
    assert before == {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and ".hydra" not in p.parts}


def test_resume_on_other_embeddings_is_refused(npy, interrupted, tmp_path):
    run, base, cache = _interrupted_run(interrupted, tmp_path)
    other = tmp_path / "other.npy"
    np.save(other, np.load(npy)[::-1].copy())  # same shape and domain name, other content
    with pytest.raises(UserError, match=r"store_fingerprint=\w+ \(the run has \w+\)"):
        train(compose_cfg(base + [f"domain.path={other}", "ckpt_path=last"], run, cache))


def test_resuming_a_finished_run_says_so_and_changes_nothing(interrupted, tmp_path, capsys):
    run, base, cache = _interrupted_run(interrupted, tmp_path)
    train(compose_cfg(base + ["ckpt_path=last"], run, cache))
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and ".hydra" not in p.parts}
    assert "fve" in RunDir(run).metrics()
    train(compose_cfg(base + ["ckpt_path=last"], run, cache))
    assert "has finished training" in capsys.readouterr().out
    assert before == {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and ".hydra" not in p.parts}


def test_a_finished_run_with_a_cut_metrics_json_is_resumed_not_refused(interrupted, tmp_path, capsys):
    """metrics.json cut short (a copy that stopped): every reader refused it with 'resume the training
    with ckpt_path=last', which refused it as finished; now the readers name the resume, the resume
    writes metrics.json again from last.ckpt, and the run reads as it did."""
    run, base, cache = _interrupted_run(interrupted, tmp_path)
    train(compose_cfg(base + ["ckpt_path=last"], run, cache))
    metrics = RunDir(run).metrics()
    whole = (run / "metrics.json").read_bytes()
    (run / "metrics.json").write_bytes(whole[:30])
    with pytest.raises(UserError, match=r"not finished training \(no sae/ or no readable metrics.json, but a "):
        finished_run_info(run)
    train(compose_cfg(base + ["ckpt_path=last"], run, cache))
    assert "has finished training" not in capsys.readouterr().out
    assert RunDir(run).metrics() == metrics


def test_npy_run_without_texts_never_loads_a_model(npy, tmp_path, monkeypatch, capsys):
    """Labelling is on (the default); with no texts it is skipped before any model is asked for."""
    import sae_lightning.data.embed

    def refuse(*_, **__):
        raise AssertionError("a run without texts must not load a model")

    monkeypatch.setattr(sae_lightning.data.embed, "load_model", refuse)
    run = tmp_path / "run"
    assert (
        train(compose_cfg([*npy_args(npy, tmp_path / "cache"), "trainer.max_epochs=1"], run, tmp_path / "cache"))
        is not None
    )
    assert "has no texts" in capsys.readouterr().out
    assert (run / "sae" / "cfg.json").is_file() and RunDir(run).metrics()["fve"] is not None


def test_a_moved_run_resumed_from_an_epoch_checkpoint_ends_like_an_uninterrupted_one(npy, tmp_path):
    """Killed at an epoch boundary, where last.ckpt is a second name (hard link) of the epoch file
    just written, then moved and resumed: the weights and metrics equal an uninterrupted run's,
    and the resumed run still ends with one epoch checkpoint (Lightning forgets the one it would
    replace when the run folder has moved since: its dirpath differs)."""
    first = tmp_path / "first"
    # every epoch's checkpoint (a run this short would otherwise write only the last one's)
    args = [
        *npy_args(npy, tmp_path / "cache"),
        "trainer.max_epochs=3",
        "labeling.enabled=false",
        "callbacks.model_checkpoint.min_interval_seconds=null",
    ]
    ckpts = first / "checkpoints"
    kill9_when(
        start("sae-train", *args, f"run_dir={first}"),
        lambda: any(ckpts.glob("epoch=*.ckpt")) and (ckpts / "last.ckpt").is_file(),
    )
    last = ckpts / "last.ckpt"
    assert any(last.samefile(epoch) for epoch in ckpts.glob("epoch=*.ckpt")), "the kill should land on a link"
    assert torch.load(last, weights_only=True)["global_step"] < 3 * 2000 * 9 // 10 // 64
    run = tmp_path / "moved"
    first.rename(run)
    finish("sae-train", *args, f"run_dir={run}", "ckpt_path=last")
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names[-1] == "last.ckpt" and len(names) == 2 and names[0].startswith("epoch=2-"), names
    reference = tmp_path / "reference"
    finish("sae-train", *args, f"run_dir={reference}")
    for name in ("sae_weights.safetensors", "sparsity.safetensors"):
        a, b = load_file(reference / "sae" / name), load_file(run / "sae" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert RunDir(reference).metrics() == RunDir(run).metrics()
