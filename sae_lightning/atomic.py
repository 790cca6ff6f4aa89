"""The one atomic writer that every file of a run and of an embedding store goes through.

A file is written to a uniquely named temp file beside it, fsynced, then renamed over the target:
a kill leaves the old file or the new one, never a part. A full disk is one line, and the temp
file goes with it."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from .errors import UserError
from .run_schema import clean

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _disk_full(path: Path, err: OSError) -> UserError:
    return UserError(f"disk full while writing {path} ({os.strerror(err.errno)}); nothing was left half-written: "
                     f"free space on {path.parent} (or write elsewhere) and run the command again")


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """`write(tmp)` fills a temp file beside `path` (same suffix, so np.save keeps the name), which
    then replaces `path`. Anything raised, a full disk included, removes the temp file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)  # the rename itself survives a power cut
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, OSError) and err.errno in DISK_FULL:
            raise _disk_full(path, err) from None
        raise
    return path


def move_into_place(tmp: Path, path: Path) -> Path | None:
    """Rename the finished folder `tmp` to `path` durably: every file in it fsynced, the rename,
    then the parent fsynced. An existing `path` is renamed aside first; its new name is returned
    for the caller to remove (None when there was none)."""
    for file in tmp.rglob("*"):
        if file.is_file():
            _fsync(file)
    old = None
    if path.exists():
        old = path.with_name(f"{tmp.name}.old")
        os.replace(path, old)
    os.replace(tmp, path)
    _fsync(path.parent)
    return old


def atomic_folder(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """A folder written whole or not at all: `write(tmp_dir)`, each file fsynced, then renamed into
    place (an older folder of that name is swapped out first and removed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    old = None
    try:
        write(tmp)
        old = move_into_place(tmp, path)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError) and err.errno in DISK_FULL:
            raise _disk_full(path, err) from None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return path


def write_json(path: str | Path, obj: dict) -> Path:
    """JSON with NaN/Inf written as null (strict JSON readers choke on NaN)."""
    text = json.dumps(clean(obj), indent=2, sort_keys=True)
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def read_json(path: Path, fix: str) -> dict:
    """A JSON object file, or one line naming the file and `fix`."""
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path} is missing; {fix}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path} is corrupt ({err}); {fix}") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path} must hold a JSON object; {fix}")
    return obj


