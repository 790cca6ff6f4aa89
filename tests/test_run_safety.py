"""Nothing lost, nothing leaked: no folder replaced that a command did not write, a
resume that cannot change the data, a labelling pointer that stays inside its run and switches in
one step, files that follow the umask, no temp files left behind, a full disk in one line."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sae_lightning.atomic import _writer_tag, atomic_folder, atomic_write, remove_abandoned
from sae_lightning.errors import UserError
from sae_lightning.label_run import label_run_dir
from sae_lightning.labels import LabelingConfig
from sae_lightning.run_dir import Labeling, RunDir

from .cli_runner import Result, run_script

ENV = {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}


def run_cmd(*args: str, umask: int | None = None, cwd: Path | None = None) -> Result:
    """Console script args[0] run in this process (cli_runner), under `umask` if given."""
    with umask_set(umask) if umask is not None else contextlib.nullcontext():
        return run_script(args[0], *args[1:], cwd=cwd, env=ENV)


def snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every entry under `folder`: file bytes, link targets (a kill must change none of them)."""
    out: dict[str, bytes | str] = {}
    for p in sorted(folder.rglob("*")):
        key = str(p.relative_to(folder))
        if p.is_symlink():
            out[key] = "-> " + os.readlink(p)
        elif p.is_file():
            out[key] = p.read_bytes()
    return out


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


@contextlib.contextmanager
def umask_set(mask: int):
    old = os.umask(mask)  # test code: the process is the test's
    try:
        yield
    finally:
        os.umask(old)


# ---- 1. never replace a folder the command did not write --------------------------------------


def test_atomic_folder_replaces_only_its_own_earlier_output(tmp_path, monkeypatch):
    mine = tmp_path / "mydata"
    mine.mkdir()
    (mine / "thesis.txt").write_text("precious")
    with pytest.raises(UserError, match=r"holds files this command did not write \(thesis.txt\)"):
        atomic_folder(mine, lambda tmp: (tmp / "out.csv").write_text("x"))
    assert (mine / "thesis.txt").read_text() == "precious" and sorted(p.name for p in mine.iterdir()) == ["thesis.txt"]
    out = tmp_path / "out"
    atomic_folder(out, lambda tmp: (tmp / "out.csv").write_text("1"))
    atomic_folder(out, lambda tmp: (tmp / "out.csv").write_text("2"))  # an earlier output of its own: replaced
    assert (out / "out.csv").read_text() == "2"
    monkeypatch.chdir(out)
    with pytest.raises(UserError, match="is the current folder"):
        atomic_folder(".", lambda tmp: (tmp / "out.csv").write_text("3"))
    assert (out / "out.csv").read_text() == "2" and not list(tmp_path.glob(".*.tmp"))


def test_atomic_folder_writes_through_a_link_to_a_folder_and_keeps_the_link(tmp_path):
    """`--out link` where the link leads to a folder: the output lands in that folder and the link
    stays (it was replaced by the folder, and itself left as a hidden `.<name>.*.tmp.old` beside it)."""
    target = tmp_path / "target"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    for text in ("1", "2"):  # empty at first, then an earlier output of its own
        atomic_folder(link, lambda tmp, text=text: (tmp / "out.csv").write_text(text))
        assert link.is_symlink() and os.readlink(link) == str(target)
        assert (target / "out.csv").read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "target"]


@pytest.mark.parametrize("where", ["under a file", "on /proc"])
def test_a_folder_that_cannot_be_made_is_one_line_naming_the_fix(where, tmp_path):
    """A file in the way, or a file system that holds no files of ours (/proc: every user, root
    included, is refused there, so this runs where a read-only folder would not refuse root)."""
    blocker = tmp_path / "afile"
    blocker.write_text("mine")
    base = blocker if where == "under a file" else Path("/proc")
    for write in (
        lambda path: atomic_folder(path, lambda tmp: (tmp / "out.csv").write_text("x"), "change --out"),
        lambda path: atomic_write(path / "out.csv", lambda tmp: tmp.write_text("x")),
    ):
        with pytest.raises(UserError, match=rf"^cannot create {base}/sae-lightning-x.* \(.+\); "):
            write(base / "sae-lightning-x")
    assert blocker.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_sae_diff_out_never_deletes_a_folder_it_did_not_write(tiny_labelled_run, tmp_path):
    mine = tmp_path / "mydata"
    mine.mkdir()
    (mine / "thesis.txt").write_text("precious")
    run = copy_run(tiny_labelled_run, tmp_path / "run")
    before = snapshot(run)
    for out in (mine, run):
        res = run_cmd("sae-diff", str(run), "Mathematics", "History", "--out", str(out))
        assert res.code == 2, res.err[-2000:]
        assert len(res.err.strip().splitlines()) == 1 and "did not write" in res.err
    assert (mine / "thesis.txt").read_text() == "precious" and len(list(mine.iterdir())) == 1
    assert snapshot(run) == before
    res = run_cmd("sae-diff", str(run), "Mathematics", "History", "--out", ".", cwd=mine)
    assert res.code == 2 and "current folder" in res.err and len(res.err.strip().splitlines()) == 1
    # an earlier diff of its own is replaced, and the pages follow the umask like every other file
    res = run_cmd("sae-diff", str(run), "Mathematics", "History", "--out", str(tmp_path / "d"), umask=0o022)
    assert res.code == 0, res.err[-2000:]
    res = run_cmd("sae-diff", str(run), "Mathematics", "History", "--out", str(tmp_path / "d"), umask=0o002)
    assert res.code == 0, res.err[-2000:]
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o775
    assert {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "d").iterdir()} == {0o664}


def test_out_with_a_tilde_the_shell_left_is_the_home_folder_not_a_folder_named_tilde(tiny_labelled_run, tmp_path):
    """bash leaves the ~ of `--out=~/x`: the check expanded it, the writer made ./~/x."""
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    res = run_script(
        "sae-diff", tiny_labelled_run, "Mathematics", "History", "--out=~/d", cwd=cwd, env={**ENV, "HOME": str(home)}
    )
    assert res.code == 0, res.err[-2000:]
    assert (home / "d" / "diff.html").is_file() and list(cwd.iterdir()) == []
    assert f"page: {home / 'd' / 'diff.html'}" in res.out


def test_only_a_dead_writers_temp_files_are_swept(tmp_path):
    """A temp name whose pid is gone is swept by the next writer of the same file; one whose pid
    is not ASCII digits ("²³": str.isdigit let it through to int(), a ValueError) or too large for
    a pid (os.kill overflowed) is nobody's and stays, as does a live writer's."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = _writer_tag().rsplit("-", 1)[0]  # this machine, as the writers name it
    names = {
        f".out.csv.{host}-{dead.pid}.x.tmp": False,
        f".out.csv.{host}-{os.getpid()}.x.tmp": True,
        f".out.csv.{host}-²³.x.tmp": True,
        f".out.csv.{host}-{10**30}.x.tmp": True,
    }
    for name in names:
        (tmp_path / name).write_text("x")
    remove_abandoned(tmp_path, "out.csv")
    assert {p.name: True for p in tmp_path.iterdir()} == {n: True for n, stays in names.items() if stays}


# ---- 3. labeling.json / current stay inside the run ------------------------------------------


@pytest.mark.parametrize("pointer", ["file", "link", "entry"])
def test_the_current_labelling_must_be_a_folder_inside_the_run(pointer, tiny_labelled_run, tmp_path):
    other = copy_run(tiny_labelled_run, tmp_path / "other")
    run = copy_run(tiny_labelled_run, tmp_path / "run")
    target = f"../../other/labelings/{RunDir(other).labeling().id}"
    if pointer == "file":  # a copy that followed the link, or one a user edited
        (run / "current").unlink(missing_ok=True)
        (run / "labeling.json").unlink()
        (run / "labeling.json").write_text(json.dumps({"current": target}))
    elif pointer == "link":
        (run / "current").unlink()
        os.symlink(target, run / "current")
    else:  # current names labelings/<id>, and that entry is a link to another run's labelling
        entry = run / "labelings" / RunDir(run).labeling().id
        shutil.rmtree(entry)
        os.symlink(other / target[len("../../other/") :], entry)
        assert RunDir(run).labelings() == []  # not listed as one of this run's either
    with pytest.raises(UserError, match=r"not (a plain folder name inside|to a labelling|a labelling of this run)"):
        RunDir(run).labeling()
    from sae_lightning.report import write_report

    other_before = snapshot(other)
    with pytest.raises(UserError):
        write_report(run)
    assert snapshot(other) == other_before
    res = run_cmd("sae-search", str(run), "algebra")
    assert res.code == 2 and len(res.err.strip().splitlines()) == 1, res.err[-2000:]


@pytest.mark.parametrize("damage", ["gone", "entry"])
def test_sae_label_repairs_a_copy_whose_labelling_is_gone_or_a_link(damage, tiny_labelled_run, tmp_path):
    """A copy that followed the links (current/ a folder, labeling.json a file) whose labelling is
    deleted, or is a link to another run's: readers say to label it again, and sae-label does, leaving
    the other run as it was (its pointer check came back after the whole labelling)."""
    other = copy_run(tiny_labelled_run, tmp_path / "other")
    run = tmp_path / "run"
    shutil.copytree(tiny_labelled_run, run)  # follows links
    old = RunDir(run).labeling().id
    shutil.rmtree(run / "labelings" / old)
    (other / "labelings" / RunDir(other).labeling().id / "labeling.json").unlink()
    if damage == "entry":
        os.symlink(other / "labelings" / RunDir(other).labeling().id, run / "labelings" / old)
    with pytest.raises(UserError, match="label the run again"):
        RunDir(run).labeling()
    before = snapshot(other)
    res = run_cmd("sae-label", f"run_dir={run}", "labeling.top_n=2", f"paths.log_dir={tmp_path / 'logs'}")
    assert res.code == 0, res.err[-2000:]
    new = RunDir(run).labeling()
    assert new.id != old and (run / "current").is_symlink() and new.report.is_file()
    assert json.loads((run / "labeling.json").read_text()) == {"current": new.id}
    assert snapshot(other) == before


# ---- 4. one atomic switch, one labelling at a time --------------------------------------------


def test_the_top_level_shows_one_labelling_through_one_link(tiny_labelled_run):
    run = RunDir(tiny_labelled_run)
    assert os.readlink(run / "current") == f"labelings/{run.labeling().id}"
    for name in (*Labeling.FILES, Labeling.POINTER):
        assert os.readlink(run / name) == f"current/{name}", name
    assert json.loads((run / "labeling.json").read_text()) == {"current": run.labeling().id}
    assert run.labeling().report.is_file() and run.labeling().summary_md.is_file()


def test_a_second_labelling_at_the_same_time_is_refused_in_one_line(tiny_labelled_run, tmp_path):
    run = copy_run(tiny_labelled_run, tmp_path / "run")
    before = snapshot(run)
    with open(run / "labelings" / RunDir.LOCK, "a") as fh:  # what a running sae-label holds
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(UserError, match="is being labelled by another process"):
            label_run_dir(run, LabelingConfig(top_n=2))
        res = run_cmd("sae-label", f"run_dir={run}", f"paths.log_dir={tmp_path / 'logs'}")
    assert res.code == 2 and len(res.err.strip().splitlines()) == 1, res.err[-2000:]
    assert "now current" not in res.out
    assert snapshot(run) == before


@contextlib.contextmanager
def unwritable(folder: Path):
    """`folder` takes no new entries for as long as the block runs: chmod for a user, the immutable
    flag for root (whom modes do not stop); skipped where neither is allowed."""
    if os.geteuid():
        folder.chmod(0o555)
        undo = ["chmod", "755", str(folder)]
    elif subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
        pytest.skip("chattr +i is not permitted here")
    else:
        undo = ["chattr", "-i", str(folder)]
    try:
        yield
    finally:
        subprocess.run(undo, check=True)


def test_a_run_that_cannot_be_written_is_one_line_before_the_scan(tiny_labelled_run, tmp_path):
    """A relabel writes into the run: a read-only one (another user's, a read-only mount) was a
    PermissionError traceback from the temp labelling's mkdir."""
    run = copy_run(tiny_labelled_run, tmp_path / "run")
    before = snapshot(run)
    with unwritable(run / "labelings"), pytest.raises(UserError) as err:
        label_run_dir(run, LabelingConfig(top_n=2))
    assert str(err.value).startswith(f"cannot create {run / 'labelings'}/.") and str(err.value).endswith(
        "a labelling is written into its run: copy the run where you can write (cp -a) and label the copy"
    )
    assert snapshot(run) == before


def test_a_run_whose_own_folder_takes_no_entries_is_one_line_before_the_scan(tiny_labelled_run, tmp_path):
    """labelings/ writable but the run's folder not (the switch renames `current` there): a
    PermissionError traceback after the whole labelling, which was left in labelings/, not current."""
    run = copy_run(tiny_labelled_run, tmp_path / "run")
    before = snapshot(run)
    with unwritable(run), pytest.raises(UserError, match=rf"^cannot create {run}/\..+\.tmp \(") as err:
        label_run_dir(run, LabelingConfig(top_n=2))
    assert str(err.value).endswith("copy the run where you can write (cp -a) and label the copy")
    assert snapshot(run) == before


def test_a_relabel_of_a_copied_run_keeps_every_labelling_and_leaves_no_temp_files(tiny_labelled_run, tmp_path):
    """A copy that followed the links (labeling.json a file, current/ a folder, the top-level files
    copies, as shutil.copytree leaves them) gets the links back on its next labelling: nothing
    lost, the top level shows the new labelling whole, no hidden temp file at the top."""
    run = tmp_path / "run"
    shutil.copytree(tiny_labelled_run, run)  # follows links: current/ a folder, top-level files plain
    first = RunDir(run).labeling()
    first_files = snapshot(first.folder)
    label_run_dir(run, LabelingConfig(top_n=2))
    rd = RunDir(run)
    new = rd.labeling()
    assert new.id != first.id and snapshot(first.folder) == {
        **first_files,
        **{Labeling.POINTER: (first.folder / Labeling.POINTER).read_bytes()},
    }
    for name in (*Labeling.FILES, Labeling.POINTER):
        assert (run / name).read_bytes() == (new.folder / name).read_bytes(), name
    assert not [p.name for p in run.iterdir() if p.name.startswith(".") and p.name != ".hydra"]
    assert not list((run / "labelings").glob(".*.tmp"))


@pytest.mark.parametrize("holds", [[], list(Labeling.FILES), ["notes.txt"]])
def test_a_current_folder_that_no_labeling_json_names_is_replaced_or_refused_before_the_work(
    holds, tiny_labelled_run, tmp_path
):
    """current/ a folder with no labeling.json naming it (made by hand, a copy that lost the file):
    the switch renamed the new link over it, an IsADirectoryError traceback after the whole
    labelling, with the new labelling left not current. Now a folder of nothing but a labelling's
    files goes, like a copy's; one with anything else is refused in one line before the scan."""
    run = tmp_path / "run"
    shutil.copytree(tiny_labelled_run, run, symlinks=True)
    first = RunDir(run).labeling()
    (run / "current").unlink()
    (run / Labeling.POINTER).unlink()
    (run / "current").mkdir()
    for name in holds:
        (run / "current" / name).write_text("x")
    if holds == ["notes.txt"]:
        with pytest.raises(UserError, match=r"current is a folder, not the link .* and holds notes.txt; move it"):
            label_run_dir(run, LabelingConfig(top_n=2))
        assert sorted(p.name for p in (run / "labelings").iterdir() if p.name != RunDir.LOCK) == [first.id]
        return
    label_run_dir(run, LabelingConfig(top_n=2))
    new = RunDir(run).labeling()
    assert new.id != first.id and (run / "current").is_symlink()
    assert (run / Labeling.FEATURES).read_bytes() == new.features.read_bytes()
    assert not list((run / "labelings").glob(".*.tmp"))


# ---- 5. the umask --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mask,file_mode,dir_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775), (0o077, 0o600, 0o700)]
)
def test_atomic_files_and_folders_follow_the_umask(mask, file_mode, dir_mode, tmp_path):
    with umask_set(mask):
        f = atomic_write(tmp_path / "a.json", lambda tmp: tmp.write_text("{}"))
        d = atomic_folder(tmp_path / "sae", lambda tmp: (tmp / "cfg.json").write_text("{}"))
    assert stat.S_IMODE(f.stat().st_mode) == file_mode
    assert stat.S_IMODE(d.stat().st_mode) == dir_mode and stat.S_IMODE((d / "cfg.json").stat().st_mode) == file_mode


def test_a_runs_store_and_files_follow_the_umask(tmp_path):
    """A whole sae-train (npy store, sae/, run.json, metrics.json, checkpoints) under umask 002."""
    from .helpers import synthetic_npy

    npy = synthetic_npy(tmp_path, n_dirs=16, seed=0)
    run, cache = tmp_path / "run", tmp_path / "cache"
    res = run_cmd(
        "sae-train",
        "domain=npy",
        f"domain.path={npy}",
        "sae.d_sae=16",
        "sae.k=2",
        "data.batch_size=256",
        "trainer.max_epochs=1",
        "logger=none",
        "trainer.enable_progress_bar=false",
        f"paths.cache_dir={cache}",
        f"run_dir={run}",
        umask=0o002,
    )
    assert res.code == 0, res.err[-3000:]
    for root in (run, cache):
        for p in [root, *root.rglob("*")]:
            if p.name.endswith(".lock") or ".hydra" in p.parts or "wandb" in p.parts:
                continue
            want = 0o775 if p.is_dir() else 0o664
            assert stat.S_IMODE(p.stat().st_mode) == want, (p, oct(p.stat().st_mode))


# ---- 7. a full disk while numpy writes ------------------------------------------------------------


def test_a_full_disk_while_numpy_writes_is_one_line(tiny_disk):
    big = np.zeros((512, 1024), np.float32)  # 2 MiB onto 1 MiB: numpy's short write has no errno
    with pytest.raises(UserError, match=r"^disk full while writing .*shard_00000.npy \(No space left on device\)"):
        atomic_write(tiny_disk / "shard_00000.npy", lambda tmp: np.save(tmp, big))
    assert list(tiny_disk.iterdir()) == []


def test_a_full_disk_while_safetensors_or_torch_writes_is_one_line(tiny_disk):
    """safetensors (the SAE's sae/ folder, sae-export's model) raises its own error type around
    "(os error 28)", torch.save (a checkpoint) "unexpected pos" without an errno: sae-export onto a
    full disk was a SafetensorError traceback."""
    import torch
    from safetensors.torch import save_file

    big = torch.zeros(512 * 1024)  # 2 MiB onto 1 MiB
    with pytest.raises(UserError, match=r"^disk full while writing .*/sparse \(No space left on device\)"):
        atomic_folder(tiny_disk / "sparse", lambda tmp: save_file({"w": big}, str(tmp / "model.safetensors")))
    with pytest.raises(UserError, match=r"^disk full while writing .*/last.ckpt \(No space left on device\)"):
        atomic_write(tiny_disk / "last.ckpt", lambda tmp: torch.save({"w": big}, tmp))
    assert list(tiny_disk.iterdir()) == []


def test_a_full_disk_inside_a_temp_folder_names_a_folder_that_stays(tiny_disk):
    """A relabel writes into labelings/.<id>.<pid>.tmp/, removed when it fails: the line told the
    user to free space on that temp folder."""
    temp = tiny_disk / "run" / "labelings" / ".2026-01-01_00-00-00_abc123.4242.tmp"
    temp.mkdir(parents=True)
    with pytest.raises(UserError) as err:
        atomic_write(temp / "report.html", lambda tmp: tmp.write_bytes(bytes(2 << 20)))
    assert str(err.value).endswith(
        f"free space on {tiny_disk / 'run' / 'labelings'} (or write elsewhere) and run the command again"
    )


# ---- 8. a run that fails on bad data leaves no run folder ---------------------------------------


@pytest.mark.parametrize("damaged, message", [("npy", "holds NaN or Inf"), ("store", "b_dec init holds NaN")])
def test_a_run_that_fails_on_bad_data_leaves_no_run_folder(tmp_path, damaged, message):
    """Bad data found while embedding (a NaN in the .npy) or after the run claimed its folder (a store
    damaged after it was written, at the b_dec init): what the run wrote and the folder Hydra made
    for it go (failed_run.discard_failed_run, through discard_log_folder)."""
    from sae_lightning.data.embed import Embedder, build_store
    from sae_lightning.data.sources import NpyEmbeddings
    from sae_lightning.schemas.domain import NpyConfig

    npy = tmp_path / "x.npy"
    x = np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32)
    x[7, 3] = np.nan if damaged == "npy" else x[7, 3]
    np.save(npy, x)
    if damaged == "store":
        store = build_store(NpyEmbeddings(NpyConfig(path=str(npy))), Embedder(show_progress=False), tmp_path / "cache")
        emb = np.load(store.path / "embeddings.npy", mmap_mode="r+")
        emb[:] = np.nan  # the store itself still looks whole
        emb.flush()
    out = tmp_path / "out"
    res = run_cmd(
        "sae-train",
        "domain=npy",
        f"domain.path={npy}",
        "sae.d_sae=16",
        "sae.k=2",
        "logger=none",
        f"paths.log_dir={out}",
        f"paths.cache_dir={tmp_path / 'cache'}",
    )
    assert res.code == 2 and message in res.err and len(res.err.strip().splitlines()) == 1, res.err
    left = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) if out.exists() else []
    assert left == [], left


def test_a_folder_write_that_fails_removes_the_folders_it_made_above_it(tmp_path):
    """A failed or interrupted sae-diff left an empty <run>/diff/ in the run (and sae-export the
    empty folders above its --out): the folders made for the output go with it, while a folder
    that was there before, or that someone wrote into meanwhile, stays."""

    def interrupted(tmp: Path) -> None:
        (tmp / "diff.csv").write_text("half")
        raise KeyboardInterrupt  # what Ctrl-C (and SIGTERM, through cli._interruptible) raises mid-write

    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(KeyboardInterrupt):
        atomic_folder(run / "diff" / "a-vs-b", interrupted)
    assert list(run.iterdir()) == []

    def another_writer_meanwhile(tmp: Path) -> None:
        (run / "diff" / "x-vs-y").mkdir()
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_folder(run / "diff" / "a-vs-b", another_writer_meanwhile)
    assert [p.relative_to(run).as_posix() for p in sorted(run.rglob("*"))] == ["diff", "diff/x-vs-y"]
