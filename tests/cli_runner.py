"""A console command run in this process, the way its console script runs it (sys.argv, SystemExit),
with its exit status, stdout and stderr: what the error tests and the Hypothesis properties check,
without a new interpreter per call (seconds each)."""

from __future__ import annotations

import importlib
import io
import logging
import subprocess
import sys
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomllib


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        """stderr's lines that are ours (Lightning's deprecation notes on stderr are not errors)."""
        return [ln for ln in self.err.splitlines() if ln.strip() and "is deprecated" not in ln]


def run_command(entry: Callable[[], None], prog: str, *argv: object) -> Result:
    saved, handlers = sys.argv, logging.getLogger().handlers[:]
    sys.argv = [prog, *map(str, argv)]
    out, err = io.StringIO(), io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                entry()
                code = 0
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    finally:
        sys.argv = saved
        restore_root_handlers(handlers)
    return Result(code, out.getvalue(), err.getvalue())


# The package's console scripts, name -> "module:function" (pyproject.toml's [project.scripts]).
SCRIPTS: dict[str, str] = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())[
    "project"
]["scripts"]


def run_script(exe: str, *argv: object, cwd: Path | None = None, env: dict[str, str] | None = None) -> Result:
    """Console script `exe` run by `run_command`, from `cwd` with `env`'s variables set meanwhile."""
    module, func = SCRIPTS[exe].split(":")
    with pytest.MonkeyPatch.context() as patch:
        if cwd is not None:
            patch.chdir(cwd)
        for name, value in (env or {}).items():
            patch.setenv(name, value)
        return run_command(getattr(importlib.import_module(module), func), exe, *argv)


def run_process(*argv: object, timeout: float = 900) -> Result:
    """argv run as a new process, for what only a process shows (DDP ranks started by running the
    command line again, signals, a fresh interpreter's imports)."""
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout)
    return Result(done.returncode, done.stdout, done.stderr)


def restore_root_handlers(handlers: list[logging.Handler]) -> None:
    """A Hydra command sets up logging for its run (a file handler into its run folder); in a real
    process that ends with the command, here the next tests would log into a folder long gone."""
    root = logging.getLogger()
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)


def files_under(folder: Path) -> set[str]:
    """Every file under `folder` (relative paths); empty when it does not exist."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


# Files that are no output: a store's lock file (empty; unlinking a lock is never safe). A failed
# command's log folder is removed with it (sae_lightning/failed_run.py), so Hydra's files are output.
NOT_OUTPUT = (".lock",)


def wrote_nothing(*folders: Path) -> bool:
    """Nothing of a run or a store under the folders: only NOT_OUTPUT files, if anything."""
    return all(all(any(part in f for part in NOT_OUTPUT) for f in files_under(folder)) for folder in folders)
