"""A signal that comes as a command ends. The work is done and every file written, but Python's own
ending (a second or two freeing torch's modules) ran with the default handlers: a SIGTERM or Ctrl-C
there killed the finished command without a word (status -15). The command now says what was kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from sae_lightning.run_dir import RunDir

# The console script as pip writes it, named as it is, with an exit function of the kind libraries
# register (slow here, so the signal lands in it for certain): the window after the command's work.
SCRIPT = """import atexit, sys, time

atexit.register(lambda: (print("ending", flush=True), time.sleep(60)))
from sae_lightning.cli import train

sys.exit(train())
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_as_sae_train_ends_says_the_finished_run_was_kept(signum, tmp_path):
    script = tmp_path / "bin" / "sae-train"
    script.parent.mkdir()
    script.write_text(SCRIPT)
    np.save(tmp_path / "emb.npy", np.random.default_rng(0).standard_normal((200, 16)).astype(np.float32))
    run = tmp_path / "run"
    args = ["domain=npy", f"domain.path={tmp_path / 'emb.npy'}", "sae.d_sae=32", "sae.k=4", "logger=none"]
    args += ["trainer.max_epochs=1", "trainer.enable_progress_bar=false", f"run_dir={run}"]
    args += [f"paths.cache_dir={tmp_path / 'cache'}"]
    proc = subprocess.Popen(
        [sys.executable, str(script), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    for line in proc.stdout:
        if line == "ending\n":
            break
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err[-2000:]
    name = signal.Signals(signum).name
    assert err.strip().splitlines()[-1] == (
        f"sae-train: {name} after the command had finished; nothing was stopped, all it wrote is kept"
    )
    assert RunDir(run).metrics()["epochs"] == 1 and os.path.isdir(run / "sae")
