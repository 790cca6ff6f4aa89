"""One-line errors, each named: a bad path, checkpoint, name, size, key,
sweep job, data file or flag ends the command with one line on stderr and exit status 2, and
writes nothing. The commands run in this process through their console entry points."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import socket
import sys
from contextlib import redirect_stderr
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sae_lightning import cli
from sae_lightning.compare.cli import main as compare_main
from sae_lightning.conf_dir import command_defaults
from sae_lightning.diff.analysis import DiffSettings
from sae_lightning.diff.cli import main as diff_main
from sae_lightning.export.sentence_transformers import main as export_main
from sae_lightning.serve.cli import main as serve_main
from sae_lightning.terminal import printable
from sae_lightning.validate import RULES

from .cli_runner import Result, files_under, restore_root_handlers, run_command, run_script, wrote_nothing

TINY = ["sae.d_sae=32", "sae.k=4", "logger=none", "trainer.max_epochs=1", "trainer.enable_progress_bar=false"]


def _npy(folder: Path, name: str = "emb.npy", rows: int = 200, dim: int = 16, fill=None) -> Path:
    arr = np.random.default_rng(0).standard_normal((rows, dim)).astype(np.float32) if fill is None else fill
    np.save(folder / name, arr)
    return folder / name


def train(tmp: Path, *args: str, npy: Path | None = None):
    """sae-train on a small .npy, outputs and cache under tmp."""
    npy = npy or (tmp / "emb.npy" if (tmp / "emb.npy").is_file() else _npy(tmp))
    return run_command(
        cli.train,
        "sae-train",
        "domain=npy",
        f"domain.path={npy}",
        *TINY,
        f"paths.log_dir={tmp / 'out'}",
        f"paths.cache_dir={tmp / 'cache'}",
        *args,
    )


def refused(res, start: str) -> bool:
    lines = res.error_lines
    return res.code == 2 and len(lines) == 1 and lines[0].startswith("error: " + start)


@pytest.fixture(scope="module")
def npy_run(tmp_path_factory) -> Path:
    """A finished run on precomputed embeddings (no texts, no model)."""
    tmp = tmp_path_factory.mktemp("npy_run")
    res = train(tmp)
    assert res.code == 0, res.err[-2000:]
    return next((tmp / "out").glob("train/runs/npy/*/metrics.json")).parent


def test_run_dir_that_is_a_file(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    res = train(tmp_path, f"run_dir={afile}")
    assert refused(res, f"{afile} is a file, not a folder"), res.err
    res = run_command(cli.label, "sae-label", f"run_dir={afile}", f"paths.log_dir={tmp_path / 'out'}")
    assert refused(res, f"{afile} is not a run dir: it is a file, not a folder"), res.err
    assert afile.read_text() == "mine" and wrote_nothing(tmp_path / "out", tmp_path / "cache")


def test_export_out_a_file_and_an_npy_run(npy_run, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    res = run_command(export_main, "sae-export", npy_run, "--to", "sentence-transformers", "--out", afile)
    assert refused(res, f"{afile} is a file, not a folder"), res.err
    res = run_command(export_main, "sae-export", npy_run, "--to", "sentence-transformers", "--out", tmp_path / "x")
    assert refused(res, f"{npy_run} was trained on precomputed embeddings"), res.err
    assert "steer" not in res.err and not (tmp_path / "x").exists() and afile.read_text() == "mine"


def test_diff_and_compare_out_under_a_file_are_refused_before_any_work(npy_run, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    before = files_under(npy_run)
    res = run_command(diff_main, "sae-diff", npy_run, "a", "b", "--out", afile / "x")
    assert refused(res, f"{afile} is a file, not a folder, so {afile / 'x'} cannot be the output folder"), res.err
    res = run_command(compare_main, "sae-compare", npy_run, "--out", afile)
    assert refused(res, f"{afile} is a file, not a folder"), res.err
    assert "change --out" in res.err and afile.read_text() == "mine" and files_under(npy_run) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
    # sae-compare adds its files to --out one by one: a folder of yours is refused, not written into
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "matches.csv").write_text("my own table")
    (mine / "thesis.txt").write_text("mine")
    res = run_command(compare_main, "sae-compare", npy_run, "--out", mine)
    assert refused(res, f"{mine} exists and holds files this command did not write (thesis.txt)"), res.err
    assert sorted(p.name for p in mine.iterdir()) == ["matches.csv", "thesis.txt"]
    assert (mine / "matches.csv").read_text() == "my own table"  # a name of its own files: not replaced either


def test_a_run_dir_that_holds_a_run_keeps_its_record_of_how_it_was_made(npy_run, tmp_path):
    """A new run pointed at a finished one is refused before Hydra writes there: the run's
    .hydra/ (what its report shows as its config) and its log stay byte for byte. A resume keeps
    .hydra/ too, since the run's settings are the ones it was made with."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(npy_run, run, symlinks=True)

    def contents() -> dict[str, bytes]:
        return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}

    before = contents()
    res = train(tmp_path, f"run_dir={run}", "sae.k=2")
    assert refused(res, f"{run} already holds a run (it has checkpoints/)"), res.err
    assert contents() == before
    res = train(tmp_path, f"run_dir={run}", "ckpt_path=last", "trainer.max_epochs=2")
    assert res.code == 0, res.err[-2000:]
    after = contents()  # Hydra would have written the resume's overrides (ckpt_path=last) over the run's
    assert all(after[name] == before[name] for name in before if name.startswith(".hydra/"))


def test_a_checkpoint_of_another_d_in_and_a_file_that_is_no_checkpoint(npy_run, tmp_path):
    other = _npy(tmp_path, "eight.npy", dim=8)
    res = train(tmp_path, f"ckpt_path={npy_run / 'checkpoints' / 'last.ckpt'}", npy=other)
    assert refused(res, f"{npy_run / 'checkpoints' / 'last.ckpt'} holds sae.W_enc of shape (16, 32)"), res.err
    assert "size mismatch" not in res.err
    res = train(tmp_path, f"ckpt_path={other}")
    assert refused(res, f"{other} is not a readable checkpoint"), res.err
    assert "delete the run folder" not in res.err and "ckpt_path=<a .ckpt that sae-train wrote>" in res.err


def test_names_too_long_and_names_outside_the_outputs(tmp_path):
    res = train(tmp_path, f"paths.log_dir={tmp_path / ('b' * 300)}")
    assert refused(res, "the folder name bbbb"), res.err
    assert "shorten paths.log_dir" in res.err and not list(tmp_path.glob("bbb*"))
    for name in ("../../x", ".hidden", "a/b", "-x", "--help", "..", "'a\tb'", "''"):
        res = train(tmp_path, f"task_name={name}")
        shown = name.strip("'").replace("\t", "\\t")
        assert refused(res, f"task_name={shown} is invalid; set task_name to a plain folder name"), res.err
    assert not (tmp_path.parent.parent / "x").exists() and wrote_nothing(tmp_path / "out")
    res = train(tmp_path, "domain.name=-x", "train=false")  # a domain's name is made a folder name instead
    assert res.code == 0, res.err[-2000:]
    assert [p.name for p in (tmp_path / "out" / "train" / "runs").iterdir()] == ["x"]
    shutil.rmtree(tmp_path / "out")
    res = train(tmp_path, "domain.name=." + "a" * 300, "train=false")  # a long name is cut, never hidden
    assert res.code == 0, res.err[-2000:]
    (folder,) = (tmp_path / "out" / "train" / "runs").iterdir()
    assert folder.name == "a" * 100


def test_output_folders_where_none_can_be_made_are_refused_before_any_work(npy_run, tmp_path):
    """/proc takes no folders, for root too (a read-only folder would not stop root)."""
    res = train(tmp_path, "paths.log_dir=/proc/sae-lightning-x")
    assert refused(res, "cannot create /proc/sae-lightning-x/train/runs/npy/"), res.err
    assert "(No such file or directory in /proc); change paths.log_dir" in res.err
    res = train(tmp_path, "paths.cache_dir=/proc/sae-lightning-x")
    assert refused(res, "cannot create /proc/sae-lightning-x (No such file or directory in /proc)"), res.err
    assert "change paths.cache_dir" in res.err and wrote_nothing(tmp_path / "out", tmp_path / "cache")
    for command, main, args in (
        ("sae-diff", diff_main, ["a", "b"]),
        ("sae-compare", compare_main, []),
        ("sae-export", export_main, ["--to", "sentence-transformers"]),
    ):
        res = run_command(main, command, npy_run, *args, "--out", "/proc/sae-lightning-x")
        assert refused(res, "cannot create /proc/sae-lightning-x"), (command, res.err)
        assert "change --out" in res.err, (command, res.err)


def test_an_out_that_is_a_link_leading_nowhere_is_refused_before_any_work(npy_run, tmp_path):
    """mkdir and the final rename fail on a dangling link (the rename with a traceback, after the
    work): each command refuses it first, naming the link and where it leads."""
    link = tmp_path / "out"
    link.symlink_to(tmp_path / "gone")
    for command, main, args, out in (
        ("sae-diff", diff_main, ["a", "b"], link),
        ("sae-compare", compare_main, [], link / "sub"),
        ("sae-export", export_main, ["--to", "sentence-transformers"], link),
    ):
        res = run_command(main, command, npy_run, *args, "--out", out)
        assert refused(res, f"{link} is a link to {tmp_path / 'gone'}, which does not exist"), (command, res.err)
        assert "change --out" in res.err, (command, res.err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and not (tmp_path / "gone").exists()


def test_an_existing_folder_that_takes_no_files_is_refused_before_any_work(npy_run, tmp_path):
    """Only a folder still to be made was tried: an existing read-only cache was a PermissionError
    traceback from the store's staging folder (and left the log folder), an --out one a line after
    the matching."""
    from .test_run_safety import unwritable

    locked = tmp_path / "locked"
    locked.mkdir()
    with unwritable(locked):
        res = train(tmp_path, f"paths.cache_dir={locked}")
        assert refused(res, f"cannot write in {locked} ("), res.err
        assert res.err.strip().endswith("; change paths.cache_dir")
        res = run_command(compare_main, "sae-compare", npy_run, "--out", locked)
        assert refused(res, f"cannot write in {locked} ("), res.err
    assert list(locked.iterdir()) == [] and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "setting,says",
    [
        ("trainer.accelerator=mps", "`MPSAccelerator` can not run on your system"),  # no MPS on Linux, GPU or not
        ("trainer.strategy=nope", "You selected an invalid strategy name"),
    ],
)
def test_trainer_settings_lightning_cannot_run_here_are_one_line_and_leave_no_run(setting, says, tmp_path):
    res = train(tmp_path, setting)
    assert refused(res, f"the trainer settings cannot run here: {says}"), res.err
    assert "trainer.accelerator=auto uses what this machine has" in res.err
    assert not (tmp_path / "out").exists()  # no run folder, and none of the folders above it


def test_an_embedder_device_this_machine_lacks_names_embedder_device(tmp_path):
    """No MPS on Linux: the line blamed embedder.model ("cannot be loaded as a sentence-transformers
    model") and told to change it."""
    csv = tmp_path / "t.csv"
    pd.DataFrame({"text": ["A sentence about volcanoes and lava.", "One about mountains."]}).to_csv(csv, index=False)
    res = run_command(
        cli.embed,
        "sae-embed",
        "domain=files",
        f"domain.path={csv}",
        "embedder.device=mps",
        f"paths.log_dir={tmp_path / 'out'}",
        f"paths.cache_dir={tmp_path / 'cache'}",
    )
    assert refused(res, "embedder.device=mps cannot be used here ("), res.err
    assert res.err.strip().endswith("use embedder.device=cpu") and "embedder.model" not in res.err
    assert wrote_nothing(tmp_path / "out", tmp_path / "cache")


@pytest.mark.parametrize(
    "knob, hi",
    [
        ("labeling.m", 1000),
        ("labeling.m_pos", 200),
        ("labeling.n_negatives", 2000),
        ("labeling.n_hard", 500),
        ("labeling.coherence_pairs", 200000),
        ("labeling.batch_size", 40960),
        ("families.texts_per_member", 1000),
    ],
)
def test_sizes_whose_memory_grows_with_the_sae_are_bounded(knob, hi, tmp_path):
    """labeling.m texts per feature and sae-diff's --examples are held for every feature at once:
    a mistyped size is refused in one line, not run until the machine runs out of memory. So are
    the scoring sets and the coherence baseline's pairs: m_pos=100000000 was a MemoryError
    traceback, coherence_pairs=1000000000 an OOM kill, each after the training and the scan; so was
    families.texts_per_member, which the scan keeps as many top texts of as labeling.m's."""
    res = train(tmp_path, f"{knob}=1000000000")
    says = f"{knob}=1000000000 is invalid; set {knob} to a whole number from 1 to {hi}"
    assert refused(res, says), res.err
    assert wrote_nothing(tmp_path / "out", tmp_path / "cache")


def test_candidate_phrase_lengths_are_bounded(tmp_path):
    """labeling.ngram_range=[1,100] made every phrase of up to 100 words of every top text a
    candidate, for all features at once, after the training; bounded like the sizes above."""
    res = train(tmp_path, "labeling.ngram_range=[1,100]")
    says = "labeling.ngram_range=[1, 100] is invalid; set labeling.ngram_range to [lo, hi] with 1 <= lo <= hi <= 20"
    assert refused(res, says), res.err
    assert wrote_nothing(tmp_path / "out", tmp_path / "cache")


def test_keyword_rules_no_keyword_can_pass_are_refused_before_training(tmp_path):
    """min_df above sae.d_sae (or min_texts above m) left every label empty after the training."""
    res = train(tmp_path, "labeling.min_df=33")
    assert refused(res, "labeling.min_df=33 is above the SAE's 32 features"), res.err
    assert wrote_nothing(tmp_path / "out", tmp_path / "cache")


@pytest.mark.parametrize("value", ["0", "-5"])
def test_a_labelling_batch_of_no_rows_is_refused(value, tmp_path):
    res = train(tmp_path, f"labeling.batch_size={value}")
    assert refused(
        res, f"labeling.batch_size={value} is invalid; set labeling.batch_size to a whole number from 1 to 40960"
    )
    assert wrote_nothing(tmp_path / "out", tmp_path / "cache")


def test_a_judge_that_names_no_model_is_refused_before_training(tmp_path):
    """The judge grades the labels made after training: a folder that holds no model is refused
    before the training it would grade, not after it."""
    res = train(tmp_path, f"labeling.judge_model={tmp_path}")
    assert refused(res, f"labeling.judge_model={tmp_path} is not a sentence-transformers model folder"), res.err
    assert wrote_nothing(tmp_path / "out", tmp_path / "cache")


def test_an_sae_too_big_for_memory_is_refused_before_allocating(tmp_path):
    res = train(tmp_path, "sae.d_sae=10000000000")
    assert refused(res, "sae.d_sae=10000000000 at d_in=16 and data.batch_size=512 needs at least"), res.err
    assert "lower sae.d_sae or data.batch_size" in res.err
    assert not list((tmp_path / "out").rglob("checkpoints")) and not list((tmp_path / "out").rglob("run.json"))


def test_unknown_keys_are_refused_with_or_without_plus(tmp_path):
    res = train(tmp_path, "+sae.kk=3")
    assert refused(res, "sae.kk is not a setting (the sae settings are: architecture"), res.err
    res = train(tmp_path, "+domain.foo=1")
    assert refused(res, "domain.foo is not a setting"), res.err
    res = train(tmp_path, "sae.kk=3")
    assert refused(res, "sae.kk is not a setting (the sae settings are: architecture"), res.err  # not Hydra's "+sae.kk"
    assert wrote_nothing(tmp_path / "out", tmp_path / "cache")


def test_a_precision_the_sae_cannot_train_under_on_a_cpu_is_refused(tmp_path):
    """Half-precision weights have no sparse CSR kernel on a CPU (TopK's backward), and a value
    Lightning does not know would only fail inside it: both refused before any work, naming the fix."""
    res = train(tmp_path, "+trainer.precision=bf16-true")
    assert refused(res, "trainer.precision=bf16-true cannot train a topk SAE on a CPU"), res.err
    assert "use trainer.precision=bf16-mixed" in res.err
    res = train(tmp_path, "+trainer.precision=fp8")
    assert refused(res, "trainer.precision=fp8 is not a precision the SAE trains under on a CPU"), res.err
    assert wrote_nothing(tmp_path / "out", tmp_path / "cache")


def test_a_multirun_with_a_bad_job_ends_in_one_line_per_failed_job(tmp_path):
    npy = _npy(tmp_path)
    res = run_script(
        "sae-train",
        "-m",
        "domain=npy",
        f"domain.path={npy}",
        *TINY,
        f"paths.log_dir={tmp_path / 'out'}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "sae.k=4,40,48",
        cwd=tmp_path,
    )
    errors = [ln for ln in res.err.splitlines() if ln.startswith("error: ")]
    assert res.code == 2 and "Traceback" not in res.err, res.err[-3000:]
    # ours only: Hydra wrote "Error executing job with overrides: [...]" above them
    assert errors == res.error_lines, res.err[-3000:]
    assert [e.split(":")[1].split("(")[0].strip() for e in errors] == ["job #1", "job #2"]
    assert "sae.k=40 must be below sae.d_sae=32" in errors[0] and "sae.k=48" in errors[1]
    summary = json.loads(next((tmp_path / "out").rglob("sweep_summary.json")).read_text())
    assert [j["status"] for j in summary] == ["finished", "failed", "failed"]


def test_a_failed_command_leaves_no_log_folder_and_says_it_once(tmp_path):
    """The console shows the error once (the run log's copy goes to the file only), and the log
    folder Hydra made goes with its empty parents; folders that were there before stay."""

    def sae_label() -> Result:
        return run_script("sae-label", f"run_dir={tmp_path / 'missing'}", cwd=tmp_path)

    res = sae_label()
    why = "is not a run dir: the folder does not exist; give the folder of a finished run"
    assert res.code == 2 and res.err.splitlines() == [f"error: {tmp_path / 'missing'} {why}"], res.err
    assert list(tmp_path.iterdir()) == [], list(tmp_path.rglob("*"))
    mine = tmp_path / "outputs" / "label" / "runs"
    mine.mkdir(parents=True)
    assert sae_label().code == 2 and list(mine.iterdir()) == []


def test_a_failed_command_detaches_the_log_file_it_removed(tmp_path):
    """In one process (the API, a notebook, these tests) a later warning must not go to a file handler
    whose folder the failed command removed: it would reopen the file and fail."""
    argv, before = sys.argv, logging.getLogger().handlers[:]
    sys.argv = ["sae-label", f"run_dir={tmp_path / 'missing'}", f"paths.log_dir={tmp_path / 'out'}"]
    try:
        with pytest.raises(SystemExit), redirect_stderr(io.StringIO()):
            cli.label()
        files = [Path(h.baseFilename) for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    finally:
        sys.argv = argv
        restore_root_handlers(before)
    assert not (tmp_path / "out").exists() and [f for f in files if not f.parent.exists()] == []


@pytest.mark.parametrize("port", ["99999", "-5"])
def test_a_port_out_of_range_is_refused_before_loading(port, npy_run):
    """A port above 65535 used to bind to itself mod 65536, a negative one failed as a bad host."""
    res = run_command(serve_main, "sae-serve", npy_run, "--port", port)
    assert refused(res, f"--port={port} is invalid; set --port to a whole number from 0 to 65535"), res.err


def test_sae_serve_and_sae_search_refuse_a_run_without_texts_naming_their_own_fix(npy_run):
    """sae-serve said 'is not labelled; label it first with sae-label', which refuses such a run;
    sae-search named the store's folder and the Python API's steer/nearest_texts."""
    res = run_command(serve_main, "sae-serve", npy_run, "--port", "0")
    assert refused(res, f"{npy_run} was trained on embeddings without texts"), res.err
    assert "serve a run trained on texts" in res.err and "sae-label" not in res.err
    res = run_command(cli.search, "sae-search", npy_run, "algebra")  # named the store and steer/nearest_texts
    assert refused(res, f"{npy_run} was trained on precomputed embeddings (model 'unknown'), so no model"), res.err


def test_a_run_whose_store_is_not_here_says_where_it_came_from(npy_run, tmp_path):
    """A run copied from another machine (or its cache cleared): the store's line said
    '<path> is not an embedding store (no manifest.json); run `sae-embed` to build it', and a plain
    sae-embed builds the default domain's store, never the one run.json names."""
    run = tmp_path / "run"
    shutil.copytree(npy_run, run, symlinks=True)
    info = json.loads((run / "run.json").read_text())
    info["store_path"] = str(tmp_path / "elsewhere")
    (run / "run.json").write_text(json.dumps(info))
    for command, main, args in (("sae-search", cli.search, ["algebra"]), ("sae-diff", diff_main, ["a", "b"])):
        res = run_command(main, command, run, *args)
        assert refused(res, f"the store {run} was trained on, {tmp_path / 'elsewhere'} (run.json's store_path)"), (
            command,
            res.err,
        )
        assert res.err.strip().endswith(f"settings ({run / '.hydra' / 'overrides.yaml'}) and set store_path to it")


def test_a_host_not_of_this_machine_and_a_taken_port_name_their_own_fix(npy_run):
    """Both are refused before loading; an address this machine does not have used to say
    'give another --port', which fails the same way."""
    res = run_command(serve_main, "sae-serve", npy_run, "--host", "192.0.2.1", "--port", "0")  # TEST-NET-1
    assert refused(res, "cannot listen on 192.0.2.1:0 (Cannot assign requested address)"), res.err
    assert res.err.strip().endswith("give --host an address of this machine, e.g. 127.0.0.1")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = run_command(serve_main, "sae-serve", npy_run, "--port", port)
    assert refused(res, f"cannot listen on 127.0.0.1:{port} (Address already in use)"), res.err
    assert res.err.strip().endswith("give another --port")


@pytest.mark.parametrize("query", ["", "   "])
def test_an_empty_search_query_is_refused(query, npy_run):
    res = run_command(cli.search, "sae-search", npy_run, query)
    assert refused(res, "the query is empty; give a sentence to search for"), res.err


def test_all_zero_embeddings_and_metadata_without_texts(tmp_path):
    zeros = _npy(tmp_path, "zeros.npy", fill=np.zeros((200, 16), np.float32))
    res = train(tmp_path, npy=zeros)
    assert refused(res, f"{zeros} holds only zeros"), res.err
    assert wrote_nothing(tmp_path / "cache") and not (tmp_path / "out").exists()
    meta = tmp_path / "meta.csv"
    pd.DataFrame({"id": range(200), "sentence": ["a text"] * 200}).to_csv(meta, index=False)
    res = train(tmp_path, f"domain.metadata={meta}")
    assert refused(res, f"domain.metadata={meta} has no text column (it has id, sentence)"), res.err


@pytest.mark.parametrize(
    "flag,value,start",
    [
        ("--batch-size", "0", "--batch-size=0 is invalid; set --batch-size to a whole number >= 1"),
        ("--alpha", "2", "--alpha=2.0 is invalid; set --alpha to a finite number > 0 and < 1"),
        ("--alpha", "nan", "--alpha=nan is invalid"),
        ("--examples", "-1", "--examples=-1 is invalid; set --examples to a whole number from 0 to 100"),
        ("--examples", "100000", "--examples=100000 is invalid; set --examples to a whole number from 0 to 100"),
    ],
)
def test_sae_diff_option_ranges(flag, value, start, npy_run):
    before = files_under(npy_run)
    res = run_command(diff_main, "sae-diff", npy_run, "a", "b", flag, value)
    assert refused(res, start), res.err
    assert files_under(npy_run) == before


def test_every_sae_diff_option_has_a_rule():
    assert [f.name for f in DiffSettings.__dataclass_fields__.values() if f"diff.{f.name}" not in RULES] == []


@pytest.mark.parametrize("command", ["diff", "compare", "serve"])
def test_every_option_of_a_plain_command_has_a_rule(command):
    """conf/<command>.yaml holds the defaults, validate.py the ranges: a new option needs both."""
    assert [name for name in command_defaults(command) if f"{command}.{name}" not in RULES] == []


def test_sae_compare_option_ranges(npy_run):
    res = run_command(compare_main, "sae-compare", npy_run, "--threshold", "2")
    assert refused(res, "--threshold=2.0 is invalid; set --threshold to a finite number > 0 and <= 1"), res.err


def test_terminal_output_shows_control_characters_as_escapes():
    assert printable("a\x1b]0;pwned\x07b\x1b[2Jc\rd\ne\u202ef") == "a\\x1b]0;pwned\\x07b\\x1b[2Jc\\rd\\ne\\u202ef"
    assert printable("Zürich — 東京 ✓") == "Zürich — 東京 ✓"


def test_an_error_naming_a_path_with_a_newline_or_an_escape_stays_one_line(tmp_path):
    """A folder name holding a newline split the error line in two (and an escape reached the
    terminal): every `error:` line shows them escaped, as sae-search shows texts."""
    bad = tmp_path / "run\nerror: forged\x1b[2J"
    res = run_command(diff_main, "sae-diff", bad, "a", "b")
    assert refused(res, f"{printable(bad)} does not exist"), res.err
    assert "\x1b" not in res.err and "\\x1b[2J" in res.err


def test_sae_search_never_prints_a_texts_escape_sequences(tmp_path):
    """A store whose texts set the terminal's title and clear the screen, searched for real."""
    texts = [f"Sentence number {i} about prime numbers and algebra." for i in range(60)]
    texts[3] = "Prime numbers \x1b]0;pwned\x07 and \x1b[2J\x1b[H cleared screens."
    csv = tmp_path / "texts.csv"
    pd.DataFrame({"text": texts}).to_csv(csv, index=False)
    res = run_command(
        cli.train,
        "sae-train",
        "domain=files",
        f"domain.path={csv}",
        "sae.d_sae=16",
        "sae.k=2",
        "logger=none",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "labeling.enabled=false",
        "embedder.show_progress=false",
        f"paths.log_dir={tmp_path / 'out'}",
        f"paths.cache_dir={tmp_path / 'cache'}",
    )
    assert res.code == 0, res.err[-2000:]
    run = next((tmp_path / "out").rglob("metrics.json")).parent
    res = run_command(cli.search, "sae-search", run, "prime numbers \x1b[31m", "-k", "60")
    assert res.code == 0, res.err[-2000:]
    assert "\x1b" not in res.out and "\x07" not in res.out and "\\x1b]0;pwned\\x07" in res.out


@pytest.mark.parametrize(
    "command, argv, says",
    [
        ("sae-search", ["run", "q", "--top", "abc"], "argument --top: invalid int value: 'abc'"),
        ("sae-compare", ["run", "--threshold", "abc"], "argument --threshold: invalid float value: 'abc'"),
        ("sae-diff", ["run", "a"], "give two groups (got 1), or -m for every pair of domains"),
        ("sae-export", ["run", "--out", "x"], "the following arguments are required: --to"),
        ("sae-serve", ["run", "--port", "abc"], "argument --port: invalid int value: 'abc'"),
    ],
)
def test_a_bad_flag_of_a_plain_command_is_one_line_not_its_usage(command, argv, says, tmp_path):
    """argparse printed the command's usage (up to six lines) above `prog: error: ...`; the Hydra
    commands print one line, and so do these now (command_parser.CommandParser)."""
    res = run_script(command, *argv, cwd=tmp_path)
    assert res.code == 2 and res.err.strip().splitlines() == [f"error: {says}; see {command} --help"], res.err
    assert not list(tmp_path.iterdir())


def test_an_empty_out_or_run_path_is_refused_not_taken_for_a_folder(npy_run, tmp_path, monkeypatch):
    """`--out "$DIR"` or `sae-compare "$RUN"` with the variable unset: sae-compare read --out ""
    as no --out and wrote to its default, and "" as a run as the current folder (a folder of runs
    there got the comparison's files); sae-diff and sae-export took --out "" for the current folder."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(npy_run, tmp_path / "run", symlinks=True)
    for command, main, args in (
        ("sae-diff", diff_main, ["a", "b"]),
        ("sae-compare", compare_main, []),
        ("sae-export", export_main, ["--to", "sentence-transformers"]),
    ):
        res = run_command(main, command, npy_run, *args, "--out", " ")
        assert refused(res, f"argument --out: the folder is empty; give a folder path; see {command} --help"), res.err
    res = run_command(compare_main, "sae-compare", "")
    assert refused(res, "an empty run path; give a sweep dir or run dirs"), res.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_log_folder_on_a_full_disk_is_one_line_and_left_behind_by_nothing(tiny_disk, tmp_path):
    """Hydra writes .hydra/config.yaml into the command's log folder before the command starts: on
    a full disk that was Hydra's OSError traceback, with the folder and its empty files left."""
    with contextlib.suppress(OSError), open(tiny_disk / "filler", "wb") as fill:  # until the disk is full
        while True:
            fill.write(bytes(1 << 16))
            fill.flush()
    res = train(tmp_path, f"paths.log_dir={tiny_disk / 'logs'}")
    assert refused(res, f"disk full while writing {tiny_disk / 'logs' / 'train' / 'runs' / 'npy'}/"), res.err
    assert res.err.strip().endswith("and run the command again")
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler"] and wrote_nothing(tmp_path / "cache")


def test_output_onto_a_full_disk_is_one_line(tiny_labelled_run, tmp_path, capsys):
    """`sae-compare ... > /dev/full` (or > a file on a full disk): print's OSError was a traceback.
    The output goes to the real device here, as the shell's redirection sends it."""
    argv, before = sys.argv, logging.getLogger().handlers[:]
    sys.argv = ["sae-compare", str(tiny_labelled_run), "--out", str(tmp_path / "cmp")]
    try:
        with open("/dev/full", "w") as full, contextlib.redirect_stdout(full), pytest.raises(SystemExit) as stop:
            compare_main()
    finally:
        sys.argv = argv
        restore_root_handlers(before)
    assert stop.value.code == 2 and capsys.readouterr().err.splitlines() == [
        "error: disk full while writing the output (No space left on device); free space there or redirect it"
    ]
