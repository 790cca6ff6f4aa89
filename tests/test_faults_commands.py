"""The fault suite beyond sae-train: kill -9 at each stage of sae-label, sae-diff, sae-compare and
sae-export (each stage reached by polling for the file it writes first, observed from outside, as
tests/test_faults.py does for sae-train). After every kill the run folder is hashed: nothing but
the command's own new output may differ, and the run still shows one whole labelling. Then the
same command runs again (in this process: the kill is what needs a process) and finishes.
docs/reference/reliability.md tables these cases."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from sae_lightning.run_dir import Labeling, RunDir

from .test_faults import kill9_when, rerun, start


def tree_hash(folder: Path, new_output: tuple[str, ...] = ()) -> dict[str, str]:
    """sha256 of every file (and the target of every link) under `folder`, but for the paths the
    command may create (`new_output`: relative path prefixes, glob-free)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if any(rel == n or rel.startswith(n + "/") for n in new_output):
            continue
        if p.is_symlink():
            out[rel] = "link:" + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def assert_one_whole_labelling(run: Path) -> None:
    """The current labelling has every file, and the top level shows exactly it."""
    current = RunDir(run).labeling()
    for name in Labeling.FILES:
        assert (current.folder / name).is_file(), name
        assert (run / name).read_bytes() == (current.folder / name).read_bytes(), name


@pytest.fixture
def run(tiny_labelled_run, tmp_path) -> Path:
    return Path(shutil.copytree(tiny_labelled_run, tmp_path / "run", symlinks=True))


def _temp(run: Path, pid: int, name: str = ""):
    """The killed process's own temp labelling (its pid is in the name), or a file in it."""
    return lambda: any(run.glob(f"labelings/.*.{pid}.tmp/{name}".rstrip("/")))


LABEL_STAGES = {  # stage -> what appears when the stage begins (the first file it writes)
    "scan": lambda run, known, pid: _temp(run, pid),
    "features": lambda run, known, pid: _temp(run, pid, "features.parquet"),
    "families": lambda run, known, pid: _temp(run, pid, "families.parquet"),
    "report": lambda run, known, pid: _temp(run, pid, "labels.json"),
    "switch": lambda run, known, pid: (
        lambda: any(p.name not in known for p in (run / "labelings").iterdir() if not p.name.startswith("."))
    ),
}


@pytest.mark.slow
def test_kill9_at_each_stage_of_sae_label(run, tmp_path):
    """Each kill leaves the earlier labelling current and whole (or, killed after the switch, the
    new one), changes nothing outside labelings/, and the next sae-label finishes."""
    label = ("sae-label", f"run_dir={run}", "labeling.top_n=2", f"paths.log_dir={tmp_path / 'logs'}")
    first = RunDir(run).labeling().id
    for stage, ready in LABEL_STAGES.items():
        known = {p.name for p in (run / "labelings").iterdir()}
        before = tree_hash(run, ("labelings",) if stage == "switch" else ())
        pointer = {n: os.readlink(run / n) for n in ("current", *Labeling.FILES)}
        proc = start(*label)
        kill9_when(proc, ready(run, known, proc.pid))
        now = tree_hash(run, ("labelings",))
        if stage == "switch" and os.readlink(run / "current") != pointer["current"]:
            before = {k: v for k, v in before.items() if k != "current"}  # killed just after the one switch
            now.pop("current")
        assert {k: v for k, v in now.items() if not k.startswith("labelings")} == {
            k: v for k, v in before.items() if not k.startswith("labelings")
        }, stage
        assert {n: os.readlink(run / n) for n in Labeling.FILES} == {n: pointer[n] for n in Labeling.FILES}
        assert_one_whole_labelling(run)
        if stage != "switch":
            assert RunDir(run).labeling().id == first, f"killed at {stage}, the new labelling became current"
    rerun(*label)
    assert_one_whole_labelling(run)
    assert RunDir(run).labeling().id != first
    assert not list((run / "labelings").glob(".*.tmp")), "the killed labellings' temp folders are removed"


@pytest.mark.slow
def test_kill9_while_sae_diff_writes_then_rerun(run, tmp_path):
    out = run / "diff" / "Mathematics-vs-History"
    before = tree_hash(run)
    kill9_when(start("sae-diff", str(run), "Mathematics", "History"), lambda: any((run / "diff").glob(".*.tmp")))
    assert not out.exists(), "a killed diff leaves no folder that looks whole"
    assert tree_hash(run, ("diff",)) == before
    rerun("sae-diff", str(run), "Mathematics", "History")
    assert (out / "diff.html").is_file() and tree_hash(run, ("diff",)) == before
    assert [p.name for p in (run / "diff").iterdir()] == [out.name], "no temp folder is left"


@pytest.mark.slow
def test_kill9_while_sae_compare_writes_then_rerun(run, tmp_path):
    other = Path(shutil.copytree(run, tmp_path / "other", symlinks=True))
    out = tmp_path / "cmp"
    args = (str(run), str(other), "--out", str(out))
    before = (tree_hash(run), tree_hash(other))
    kill9_when(start("sae-compare", *args), lambda: any(tmp_path.glob(".cmp.*.tmp/matches.parquet")))
    assert not out.exists(), "a killed comparison leaves no folder that looks whole"
    assert (tree_hash(run), tree_hash(other)) == before
    rerun("sae-compare", *args)
    assert (out / "compare.html").is_file() and (tree_hash(run), tree_hash(other)) == before
    assert not list(tmp_path.glob(".cmp.*")), "the killed comparison's temp folder is removed"


@pytest.mark.slow
def test_kill9_while_sae_export_saves_then_rerun(run, tmp_path):
    out = tmp_path / "sparse"
    args = (str(run), "--to", "sentence-transformers", "--out", str(out))
    before = tree_hash(run)
    kill9_when(start("sae-export", *args), lambda: any(tmp_path.glob(".sparse.*.tmp")))
    assert not out.exists(), "a killed export leaves no folder that looks whole"
    assert tree_hash(run) == before
    rerun("sae-export", *args)
    assert (out / "feature_labels.json").is_file() and tree_hash(run) == before
    assert not list(tmp_path.glob(".sparse.*")), "the killed export's temp folder does not stay"
