"""Commands print their results and nothing else on stdout, and write only under outputs/."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def run_command(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    # W&B offline, as the docs and CI run it: transformers then prints a notice at import, which
    # must not land on stdout among the results
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    res = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def test_sae_search_prints_only_results_and_no_progress_bars(tiny_labelled_run, tmp_path):
    res = run_command(
        [
            str(BIN / "sae-search"),
            str(tiny_labelled_run),
            "The Roman Empire conquered Gaul.",
            "--clamp",
            "0=0",
            "-k",
            "3",
        ],
        tmp_path,
    )
    lines = res.stdout.splitlines()
    result_line = re.compile(r"^(query: .*|features it activates:|  #\d+ .*|nearest texts.*:|  -?\d\.\d{3}  \[.*)$")
    assert lines[0] == "query: The Roman Empire conquered Gaul." and len(lines) >= 10
    assert [line for line in lines if not result_line.match(line)] == []
    assert "it/s" not in res.stderr and "Loading weights" not in res.stderr  # no bars on stderr either
    assert list(tmp_path.iterdir()) == []


def test_sae_compare_of_run_folders_writes_under_outputs_compare(tiny_labelled_run, tmp_path):
    res = run_command([str(BIN / "sae-compare"), str(tiny_labelled_run)], tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["outputs"]
    written = list((tmp_path / "outputs" / "compare").glob("*/compare.html"))
    assert len(written) == 1 and Path(res.stdout.split("page: ")[1].split()[0]) == written[0].resolve()


def test_a_log_file_whose_disk_fills_warns_once_and_stops(tiny_disk, capsys):
    """A Hydra command's cli.log on a disk that fills while it runs: Python's logging printed a
    '--- Logging error ---' traceback on stderr for every later record. The handler is Hydra's
    kind (a FileHandler on the root logger, beside the console's), the disk a real full one."""
    import contextlib
    import logging

    from sae_lightning.quiet import log_file_failures_once

    with contextlib.suppress(OSError), open(tiny_disk / "filler", "wb") as fill:  # until the disk is full
        while True:
            fill.write(bytes(1 << 16))
            fill.flush()
    root, log = logging.getLogger(), logging.getLogger("sae_lightning.test_quiet")
    console, file = logging.StreamHandler(sys.stdout), logging.FileHandler(tiny_disk / "cli.log")
    level, root.level = root.level, logging.INFO
    root.addHandler(console)
    root.addHandler(file)
    try:
        log_file_failures_once()
        for i in range(3):
            log.info("record %d", i)
    finally:
        for handler in (console, file):
            root.removeHandler(handler)
            handler.close()
        root.level = level
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        f"warning: cannot write the log {tiny_disk / 'cli.log'} (No space left on device); it stops here"
    ]
    assert [ln for ln in out.splitlines() if "record" in ln] == ["record 0", "record 1", "record 2"]
