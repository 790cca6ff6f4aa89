"""A run whose files were tampered with, damaged or made unreadable, read by the Python API,
sae-search and sae-serve: one line naming the file and the fix (exit 2 for a command), never a
traceback; a server answers that run's pages 503 with the line, keeps its index and the other runs
open, and serves the run again once it is readable. Each case here was a traceback before."""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sae_lightning as sl
from sae_lightning.errors import UserError
from sae_lightning.run_dir import RunDir
from sae_lightning.serve import load_served, running

from .cli_runner import run_process, run_script
from .serve_runs import relabel

# A process for which file modes count: root reads anything, unless it runs without these.
NO_READ_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def bound_by_modes(argv: list[object]) -> list[str]:
    """argv run so that a file's mode binds it: as it is for a user; for root, under setpriv without
    the capabilities that let root read anything (skipped where that cannot be done)."""
    if os.geteuid():
        return [str(a) for a in argv]
    if not shutil.which("setpriv") or subprocess.run([*NO_READ_OVERRIDE, "true"]).returncode:
        pytest.skip("root reads any file, and setpriv cannot drop that here")
    return [*NO_READ_OVERRIDE, *map(str, argv)]


def script(name: str) -> Path:
    return Path(sys.executable).parent / name


@pytest.fixture
def run(tiny_labelled_run, tmp_path) -> Path:
    """A copy of the session's labelled run with its links kept, reading the session's store."""
    return Path(shutil.copytree(tiny_labelled_run, tmp_path / "run", symlinks=True))


def features_file(run: Path) -> Path:
    return RunDir(run).labeling().features


def set_column(path: Path, name: str, values) -> None:
    table = pq.read_table(path)
    array = pa.array(values)
    pq.write_table(table.set_column(table.schema.get_field_index(name), pa.field(name, array.type), array), path)


def one_line(err: pytest.ExceptionInfo) -> str:
    assert "\n" not in str(err.value)
    return str(err.value)


TAMPERED = {
    "top_acts as strings": (lambda r: set_column(features_file(r), "top_acts", ["x"] * 128), "column top_acts holds"),
    "density as words": (lambda r: set_column(features_file(r), "density", ["high"] * 128), "column density holds"),
    "a feature twice": (lambda r: set_column(features_file(r), "feature_id", [0] * 128), "lists feature 0 more than"),
    "features.parquet a folder": (
        lambda r: (features_file(r).unlink(), features_file(r).mkdir()),
        "features.parquet is a folder, not a table",
    ),
    "labels.json's labels a number": (
        lambda r: RunDir(r).labeling().labels_path.write_text(json.dumps({"labels": 5})),
        'labels.json holds "labels": 5, not an object',
    ),
    "current deleted": (lambda r: (r / "current").unlink(), "current is missing, not the link to the run's current"),
    "current a file": (
        lambda r: ((r / "current").unlink(), (r / "current").write_text("x")),
        "current is a file, not the link to the run's current labelling; point it at one (ln -sfn labelings/<id>",
    ),
    "labels.json a folder": (
        lambda r: (RunDir(r).labeling().labels_path.unlink(), RunDir(r).labeling().labels_path.mkdir()),
        "labels.json cannot be read (Is a directory)",
    ),
}


@pytest.mark.parametrize("case", TAMPERED)
def test_a_tampered_run_is_one_line_from_the_api(run, case):
    """Were ValueError (reindex on duplicate ids, float('x')), TypeError and IsADirectoryError
    tracebacks from Run.load; 'has no feature_id column' for a folder in the table's place; and
    a run whose `current` link was deleted read as unlabelled (sae-serve: 'label it first')."""
    tamper, message = TAMPERED[case]
    tamper(run)
    with pytest.raises(UserError) as err:
        sl.Run.load(run)
    assert message in one_line(err) and "sae-label run_dir=" in str(err.value)


def set_weight(run: Path, name: str, change) -> None:
    from safetensors.numpy import load_file, save_file

    path = run / "sae" / "sae_weights.safetensors"
    tensors = load_file(path)
    save_file({**tensors, name: change(tensors[name])}, path)


@pytest.mark.parametrize(
    "name,change,message",
    [
        ("W_enc", lambda w: w * float("nan"), "W_enc holds NaN"),  # search found no feature, and said nothing
        ("W_dec", lambda w: w[:64], "W_dec has shape (64, 384), expected (128, 384) from cfg.json"),  # no fix named
    ],
)
def test_damaged_weights_are_one_line_naming_the_fix(run, name, change, message):
    set_weight(run, name, change)
    with pytest.raises(UserError) as err:
        sl.Run.load(run)
    assert message in one_line(err) and str(err.value).endswith("save the SAE again (or retrain the run)")


def test_a_features_top_lists_of_different_lengths_are_one_line(run):
    """Was a ValueError ('All arrays must be of the same length') from run.feature's DataFrame."""
    set_column(features_file(run), "top_texts", [["one text"]] * 128)
    with pytest.raises(UserError) as err:
        sl.Run.load(run).feature(3)
    assert one_line(err) == (
        f"{features_file(run)}: feature 3's top_* lists differ in length; label the run again (sae-label run_dir={run})"
    )


def test_a_tampered_run_is_one_line_from_sae_search(run):
    TAMPERED["top_acts as strings"][0](run)
    res = run_script("sae-search", run, "prime numbers")
    assert res.code == 2 and len(res.error_lines) == 1 and "column top_acts holds string" in res.err, res.err


def test_a_store_gone_names_settings_that_are_there(run, tmp_path):
    """A run trained from Python has no .hydra/, whose overrides.yaml the line named as the settings."""
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "store_path": str(tmp_path / "gone")}))
    assert not (run / ".hydra").exists()
    with pytest.raises(UserError) as err:
        sl.Run.load(run)
    assert one_line(err).endswith(f"settings (run.json's wiki_all and {info['model_name']}) and set store_path to it")


def test_a_run_path_too_long_is_one_line():
    with pytest.raises(UserError) as err:
        sl.Run.load("/tmp/" + "a" * 5000)
    assert one_line(err).endswith("cannot be read (File name too long); give a path that can be read")


@pytest.mark.parametrize("what", [".", "sae/sae_weights.safetensors", "store"])
def test_a_run_or_store_you_cannot_read_is_one_line(run, tmp_path, what):
    """A run (or its store) of another user's, chmod 700 or 600: Python 3.11's Path.is_file lets
    EACCES through, so sae-search and the API ended in a PermissionError traceback."""
    target = run / what
    if what == "store":  # a copy of the store, so the session's stays readable
        info = json.loads((run / "run.json").read_text())
        store = Path(shutil.copytree(info["store_path"], tmp_path / "store"))
        (run / "run.json").write_text(json.dumps({**info, "store_path": str(store)}))
        target = store
    target.chmod(0)
    try:
        res = run_process(*bound_by_modes([script("sae-search"), run, "prime numbers"]), timeout=300)
    finally:
        target.chmod(0o755 if target.is_dir() else 0o644)
    owner = "store" if what == "store" else "run"
    assert res.code == 2 and res.err.count("\n") == 1 and "Traceback" not in res.err, res.err
    assert res.err.startswith(
        f"error: {target.resolve() if what == '.' else target} cannot be read (Permission denied)"
    )
    assert f"make the {owner} readable to you (its owner can run chmod -R a+rX" in res.err


def test_a_search_for_runs_skips_one_you_cannot_read(run, tmp_path):
    """latest_run over a shared outputs folder holding another user's newer run, and sae-diff named
    that run: PermissionError tracebacks from RunDir.missing's is_file."""
    theirs = Path(shutil.copytree(run, tmp_path / "runs" / "theirs", symlinks=True))
    shutil.move(run, tmp_path / "runs" / "mine")
    os.utime(theirs / "metrics.json")  # the newest: what latest_run would open
    (theirs / "sae").chmod(0)
    try:
        code = f"import os, sae_lightning as sl; os.environ['SAE_RUN_DIR'] = {str(theirs.parent)!r}; "
        code += "print(sl.latest_run().path.name)"
        found = run_process(*bound_by_modes([sys.executable, "-c", code]), timeout=300)
        diff = run_process(*bound_by_modes([script("sae-diff"), theirs, "Arts", "History"]), timeout=300)
    finally:
        (theirs / "sae").chmod(0o755)
    assert found.out == "mine\n", found.err
    assert diff.code == 2 and diff.err == (
        f"error: {theirs / 'sae'} cannot be read (Permission denied); make the run readable to you "
        f"(its owner can run chmod -R a+rX {theirs}) or read a copy of it\n"
    )


def test_run_labelings_skips_one_you_cannot_read(run):
    """An earlier labelling of another user's (chmod 700): run.labelings() raised PermissionError."""
    old = RunDir(run).labeling()
    relabel(run, 9, "a new label")
    old.folder.chmod(0)
    try:
        code = f"import sae_lightning as sl; print([lab.id for lab in sl.Run.load({str(run)!r}).labelings()])"
        res = run_process(*bound_by_modes([sys.executable, "-c", code]), timeout=300)
    finally:
        old.folder.chmod(0o755)
    assert res.code == 0 and res.out == f"{[RunDir(run).labeling().id]}\n", res.err


def get(url: str, method: str = "GET") -> tuple[int, str, dict]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=60) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(), dict(err.headers)


def test_a_served_run_relabelled_with_a_damaged_labelling_answers_503_and_recovers(run):
    """Every page of the run and the index answered 'error 400' (a bad request, it said) and read
    the damaged table again on every request; now the run's pages say 503 with the file and the
    fix, the index opens, and the run serves again once the table is whole."""
    with running(load_served([run]), port=0) as base:
        assert get(base + "/r/run/features/3")[0] == 200
        relabel(run, 9, "a new label")
        table = features_file(run)
        whole = table.read_bytes()
        table.write_bytes(whole[:500])
        status, body, _ = get(base + "/r/run/features/3")
        assert status == 503 and body.count("\n") == 1, body
        assert body.startswith(f"error 503: run 'run' cannot be served as it is now: {table} cannot be read as a table")
        assert get(base + "/r/run/search?q=algebra")[0] == 503
        status, body, _ = get(base + "/")
        assert status == 200 and "cannot be read now (its pages say why)" in body
        table.write_bytes(whole)
        assert get(base + "/r/run/features/3")[0] == 200
        status, _, headers = get(base + "/r/run/features", method="POST")
        assert status == 405 and set(headers.get("allow", "").split(", ")) == {"GET", "HEAD"}  # had no Allow


def test_a_served_run_made_unreadable_answers_503_and_recovers(run):
    """Was a 500 with a PermissionError traceback in the log, on every page and the index."""
    server = subprocess.Popen(
        bound_by_modes([script("sae-serve"), run, "--port", "0"]), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        base = server.stdout.readline().decode().split(" at ")[1].split()[0].rstrip("/")
        run.chmod(0)
        try:
            status, body, _ = get(base + "/r/run/features/3")
            index = get(base + "/")
        finally:
            run.chmod(0o755)
        assert status == 503 and body == (
            f"error 503: run 'run' ({run}) cannot be read now (Permission denied); "
            "make it readable to sae-serve's user again, or restart sae-serve without it\n"
        )
        assert index[0] == 200 and "cannot be read now" in index[1]
        assert get(base + "/r/run/features/3")[0] == 200
    finally:
        server.send_signal(2)
        _, err = server.communicate(timeout=60)
    assert server.returncode == 130 and "Traceback" not in err.decode(), err.decode()


def test_sae_serve_stops_on_ctrl_c_in_one_line_however_early():
    """The script imports serve.cli first: the web stack it imported with it took seconds, and a
    Ctrl-C in them was a KeyboardInterrupt traceback. Now the stack loads inside the command."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, sae_lightning.serve.cli; print(sorted({'uvicorn', 'torch'} & set(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_a_served_runs_unreadable_families_are_said_not_hidden(run):
    """The report notes an optional file it cannot read; sae-serve showed no families and said
    nothing, as if the run had none."""
    families = RunDir(run).labeling().families
    families.write_bytes(families.read_bytes()[:300])
    with running(load_served([run]), port=0) as base:
        status, body, _ = get(base + "/r/run/features")
    assert status == 200 and f"{families} unreadable" in html.unescape(body), body[-3000:]


def test_sae_serve_stopped_while_it_warms_up_exits_at_once(run):
    """The start-up's domain matrix (minutes on a first start of a large run) ran on a thread pool,
    whose workers Python joins at exit: a Ctrl-C printed its line, then the server waited for the
    matrix. Here the matrix takes a minute; the server, stopped during it, exits in seconds."""
    code = (
        "import sys, time\n"
        "from sae_lightning.serve import domains_view\n"
        "domains_view.DomainDiffs.warm = lambda self: time.sleep(60)\n"
        "from sae_lightning.serve.cli import main\n"
        "sys.argv = ['sae-serve', sys.argv[1], '--port', '0']\n"
        "main()\n"
    )
    server = subprocess.Popen([sys.executable, "-c", code, run], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    server.stdout.readline()  # listening: the warm-up has begun
    start = time.monotonic()
    server.send_signal(2)
    _, err = server.communicate(timeout=120)
    assert server.returncode == 130 and time.monotonic() - start < 30, err.decode()[-2000:]


@pytest.mark.parametrize("name", ["run.json", "metrics.json", "sae/cfg.json", "features.parquet", "labels.json"])
def test_a_named_pipe_in_a_run_files_place_is_one_line_not_a_hang(name, run):
    """A reader opened it and waited for a writer for ever (features.parquet, labels.json), or took it
    for missing (run.json: "not a finished run"). Run as processes: a hang fails on the timeout."""
    target = (run / name).resolve()  # the labelling's own file, behind the run's top-level link
    target.unlink()
    os.mkfifo(target)
    says = (
        f"{run / name} is a named pipe, not a file, and reading it would wait for ever; put the file back in its place"
    )
    res = run_process(script("sae-search"), run, "a query", timeout=120)
    assert res.code == 2 and res.err.strip().splitlines() == [f"error: {says}"], res.err[-2000:]
    code = f"import sae_lightning as sl; sl.Run.load({str(run)!r})"
    res = run_process(sys.executable, "-c", code, timeout=120)
    assert res.code == 1 and res.err.strip().splitlines()[-1] == f"sae_lightning.errors.UserError: {says}", res.err
