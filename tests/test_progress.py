"""sae-train's progress: Lightning's bars, on stderr, where a terminal shows them; one line per epoch
in a log (stdout or stderr redirected: a file, a pipe, CI), with no bar redrawn per step. Either way
stdout ends with the run's results, and nothing a third-party library says about its own internals."""

from __future__ import annotations

import fcntl
import math
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

from sae_lightning.run_dir import RunDir

from .helpers import synthetic_npy

ENV = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}
BAR = re.compile(r"it/s|\r|Epoch \d+: +\d+%")
EPOCH_LINE = re.compile(
    r"epoch (\d+)/2, step (\d+)/(\d+), loss [\d.e-]+, (?:fve [\d.e-]+, )?val fve [\d.e-]+, "
    r"[\d.]+ steps/s(?:, \d+m\d\ds left)?$",
    re.M,
)


def sae_train_argv(tmp_path: Path) -> list[str]:
    """A two-epoch run on synthetic embeddings with the default progress setting (bars on)."""
    npy = synthetic_npy(tmp_path, n_dirs=32, seed=0)
    return [
        str(Path(sys.executable).parent / "sae-train"),
        "domain=npy",
        f"domain.path={npy}",
        "sae.d_sae=32",
        "sae.k=4",
        "data.batch_size=256",
        "trainer.max_epochs=2",
        "logger=none",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"run_dir={tmp_path / 'run'}",
    ]


def in_terminals(argv: list[str], timeout: float = 600) -> tuple[int, str, str]:
    """Run argv with stdout and stderr each on a pseudo-terminal of its own, as in a shell window."""
    (out_main, out_side), (err_main, err_side) = pty.openpty(), pty.openpty()
    for side in (out_side, err_side):  # 24 x 120 characters (a new pty is 0 x 0: no room for a bar)
        fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out_side, stderr=err_side, env=ENV)
    os.close(out_side)
    os.close(err_side)
    got = {out_main: b"", err_main: b""}
    pending = list(got)
    while pending:  # drained as it comes: a full terminal buffer would block the command
        ready, _, _ = select.select(pending, [], [], timeout)
        assert ready, "sae-train wrote nothing for too long"
        for fd in ready:
            try:
                data = os.read(fd, 1 << 16)
            except OSError:  # EIO: the command closed its side
                data = b""
            got[fd] += data
            if not data:
                pending.remove(fd)
                os.close(fd)
    return proc.wait(timeout), got[out_main].decode(errors="replace"), got[err_main].decode(errors="replace")


def finished(run: Path, stdout: str) -> None:
    assert f"run folder: {run}" in stdout and re.search(r"fve=\d", stdout)
    assert not math.isnan(RunDir(run).metrics()["fve"])


def test_a_log_gets_one_line_per_epoch_and_no_bars(tmp_path):
    res = subprocess.run(sae_train_argv(tmp_path), capture_output=True, text=True, env=ENV, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = EPOCH_LINE.findall(res.stdout)
    assert [int(epoch) for epoch, _, _ in lines] == [1, 2], res.stdout[-3000:]
    steps, total = [int(s) for _, s, _ in lines], int(lines[-1][2])
    assert 0 < steps[0] < steps[1] == total  # the last epoch ends at the last step
    assert not BAR.search(res.stdout) and not BAR.search(res.stderr), res.stderr[-2000:]
    assert "LeafSpec" not in res.stderr and "anonymous setting" not in res.stderr  # third parties' internals
    assert "epoch 2/2" in (tmp_path / "run" / "cli.log").read_text()  # the run's own log has them too
    finished(tmp_path / "run", res.stdout)


def test_a_terminal_gets_the_bars_on_stderr_never_stdout(tmp_path):
    code, stdout, stderr = in_terminals(sae_train_argv(tmp_path))
    assert code == 0, stderr[-3000:]
    assert re.search(r"Epoch 1: 100%", stderr), stderr[-2000:]  # the bar ran, on stderr
    assert "Epoch" not in stdout and "it/s" not in stdout and not EPOCH_LINE.search(stdout.replace("\r\n", "\n"))
    finished(tmp_path / "run", stdout)
