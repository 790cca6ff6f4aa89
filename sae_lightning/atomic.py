"""The one atomic writer that every file of a run and of an embedding store goes through.

A file is written to a uniquely named temp file beside it, fsynced, then renamed over the target:
a kill leaves the old file or the new one, never a part. A full disk is one line, and the temp
file goes with it. Files and folders get the modes the user's umask gives (mkstemp and mkdtemp
make them 0600 / 0700, which would hide a run from colleagues). A folder replaces only an earlier
output of the same writer, never a folder with files of someone else's."""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import re
import shutil
import socket
import stat
import tempfile
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from .errors import UserError
from .path_checks import entries_besides, file_in_the_way, not_a_file, os_reason, some_of
from .run_schema import clean

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# numpy's tofile (np.save to a path) reports a short write without an errno
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")
# safetensors (the SAE's weights, sae-export's model) raises its own error type around Rust's I/O
# error, whose text ends in "(os error 28)"
_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")
# torch.save (the checkpoints) reports a failed write as "unexpected pos" without an errno: a write
# that failed with less room than this left on its file system counts as a full disk
NO_ROOM = 1 << 20
# a temp file or folder of ours (_temp_prefix here, RunDir.new_labeling's .<id>.<pid>.tmp)
_TEMP_NAME = re.compile(r"^\..+\.tmp$")


def umask() -> int:
    """The process's umask, read without setting it (os.umask can only read by changing it, which
    would race with other threads): the kernel's /proc/self/status, else the usual 022."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


def follow_umask(path: Path, folder: bool = False) -> None:
    """The mode a plain open() / mkdir() would have given `path` (an executable keeps its x bits)."""
    executable = folder or bool(path.stat().st_mode & 0o111)
    os.chmod(path, (0o777 if executable else 0o666) & ~umask())


def _errno(err: BaseException) -> int | None:
    """The errno behind `err`: an OSError's own, or the one in a Rust I/O error's text."""
    if isinstance(err, OSError):
        return err.errno
    found = _RUST_OS_ERROR.search(str(err))
    return int(found.group(1)) if found else None


def _no_room(folder: Path) -> bool:
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < NO_ROOM


def _is_disk_full(err: BaseException, folder: Path | None = None) -> bool:
    """Whether `err` is a full disk. With `folder` (where the failed write went, asked before its
    temp file is removed) a write error without an errno counts too when that disk has no room left."""
    if not isinstance(err, Exception):  # Ctrl-C, SIGTERM, a kill: never a full disk
        return False
    code = _errno(err)
    if code in DISK_FULL or (isinstance(err, OSError) and code is None and bool(_SHORT_WRITE.search(str(err)))):
        return True
    return code is None and folder is not None and _no_room(folder)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def gone(pid: str) -> bool:
    """Whether the pid a temp name carries names a process that no longer runs. A name whose pid is
    not ASCII digits ("²³" passes str.isdigit, then int() raised) or not a possible pid (os.kill
    overflowed) is no writer's: left alone. Another user's running process counts as running."""
    if not (pid.isascii() and pid.isdigit()) or int(pid) > 2**22:  # the kernel's pid_max ceiling
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _writer_tag() -> str:
    """Who writes a temp file: host and pid (a store on a shared file system has writers on
    several machines, and only this machine can tell whether one of its pids is gone)."""
    host = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname()) or "host"
    return f"{host}-{os.getpid()}"


def _temp_prefix(name: str) -> str:
    """Temp names carry the writer: `.<name>.<host>-<pid>.<random>.tmp[.suffix]`."""
    return f".{name}.{_writer_tag()}."


def remove_abandoned(parent: Path, name: str) -> None:
    """Temp files and folders that a killed writer of `name` on this machine left in `parent` (its
    pid is gone): never renamed into place, so nobody's data. Live writers' and other machines'
    are left alone."""
    if not parent.is_dir():
        return
    host = _writer_tag().rsplit("-", 1)[0]
    for tmp in parent.glob(f".{glob.escape(name)}.*.tmp*"):
        tag_host, _, pid = tmp.name[len(name) + 2 :].split(".", 1)[0].rpartition("-")
        if tag_host == host and gone(pid):
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable."""
    _fsync(folder)


@contextlib.contextmanager
def creating(path: Path, fix: str = "write somewhere you can create files"):
    """Folder and temp-file creation for `path`: a folder that cannot be made or written (a file in
    its way, read-only, a file system without files of ours such as /proc) is one line naming `fix`,
    not a traceback; a full disk is _disk_full's line."""
    try:
        yield
    except OSError as err:
        if _is_disk_full(err):
            raise _disk_full(path, err) from None
        blocker = file_in_the_way(Path(err.filename or path))
        if err.errno in (errno.EEXIST, errno.ENOTDIR) and blocker is not None:
            reason = f"{blocker} is a file, not a folder"
        else:
            reason = os_reason(err)
        raise UserError(f"cannot create {path} ({reason}); {fix}") from None


def _disk_full(path: Path, err: BaseException) -> UserError:
    # the folder to free space on: not a temp folder the file was going into (a relabel's
    # labelings/.<id>.<pid>.tmp/), which is gone by the time the line is read
    where = next((p for p in path.parents if not _TEMP_NAME.match(p.name)), path.parent)
    return UserError(
        f"disk full while writing {path} ({os.strerror(_errno(err) or errno.ENOSPC)}); "
        "nothing was left half-written: "
        f"free space on {where} (or write elsewhere) and run the command again"
    )


def as_disk_full(err: BaseException, path: Path) -> UserError | None:
    """The one-line error for a full disk met by someone else's writer (Hydra writing its log
    folder `path`), naming the file when the error does; None when `err` is no full disk."""
    if not _is_disk_full(err):
        return None
    named = getattr(err, "filename", None)  # a failed write, unlike a failed open, names no file
    return _disk_full(Path(os.fsdecode(named)).absolute() if named else path, err)


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """`write(tmp)` fills a temp file beside `path` (same suffix, so np.save keeps the name), which
    then replaces `path`. Anything raised, a full disk included, removes the temp file."""
    path = Path(path)
    with creating(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned(path.parent, path.stem)
    with creating(path):
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path.stem), suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        if not tmp.is_symlink():
            follow_umask(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)  # the rename itself survives a power cut
    except BaseException as err:
        full = _is_disk_full(err, path.parent)  # before the temp file's space is given back
        with contextlib.suppress(OSError):
            tmp.unlink()
        if full:
            raise _disk_full(path, err) from None
        raise
    return path


def atomic_link(source: str | Path, path: str | Path) -> Path:
    """`path` becomes a second name of the finished file `source` (a hard link made under a temp
    name, then renamed over `path`): no byte is written twice, and since every writer here replaces
    a file by renaming, never in place, the two names keep the same content until one is replaced.
    A file system without hard links gets a copy instead."""

    def link(tmp: Path) -> None:
        tmp.unlink()  # mkstemp's empty file: the link takes its unique name
        try:
            os.link(source, tmp)
        except OSError as err:
            if _is_disk_full(err):
                raise
            shutil.copyfile(source, tmp)

    return atomic_write(path, link)


def move_into_place(tmp: Path, path: Path) -> Path | None:
    """Rename the finished folder `tmp` to `path` durably: every file in it fsynced, the rename,
    then the parent fsynced. An existing `path` (an earlier output of the same writer, see
    atomic_folder) is renamed aside first; its new name is returned for the caller to remove (None
    when there was none)."""
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


def check_replaceable(path: str | Path, names: set[str], fix: str) -> None:
    """Refuse, in one line, to write the folder `path` over anything but an empty folder or an
    earlier output of the same writer (a folder holding nothing but entries named in `names`):
    a folder of the user's, the current folder or a run folder is never replaced."""
    path = Path(path).absolute()
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} is a file, not a folder; {fix}")
    if not path.is_dir():
        return
    cwd = Path.cwd().resolve()
    if path.resolve() == cwd or path.resolve() in cwd.parents:
        raise UserError(f"{path} is the current folder (or holds it) and cannot be replaced; {fix}")
    foreign = entries_besides(path, names)
    if foreign:
        raise UserError(f"{path} exists and holds files this command did not write ({some_of(foreign)}); {fix}")


def atomic_folder(
    path: str | Path,
    write: Callable[[Path], Any],
    fix: str = "give a new or empty folder",
    own: Collection[str] = (),
) -> Path:
    """A folder written whole or not at all: `write(tmp_dir)`, each file fsynced, then renamed into
    place. What stands at `path` is replaced only when it is empty or an earlier output of this
    writer (nothing in it that `write` does not write again, nor named in `own`: the names of a
    writer whose files vary, such as sae-compare's joint-run table); anything else is refused in
    one line before and after `write` (check_replaceable), never deleted."""
    path = Path(path).absolute()
    # before the work: a file or the current folder (the folder's own entries are no objection yet)
    check_replaceable(path, {p.name for p in path.iterdir()} if path.is_dir() else set(), fix)
    if path.is_symlink():  # a link to a folder: the output goes where it leads, and the link stays the user's
        path = path.resolve()
    made = [p for p in path.parents if not p.exists()]  # the folders above it this call makes, deepest first
    with creating(path, fix):
        path.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned(path.parent, path.name)
    try:
        with creating(path, fix):
            tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temp_prefix(path.name), suffix=".tmp"))
    except BaseException:
        _remove_empty(made)
        raise
    old = None
    try:
        write(tmp)
        # some writers make their files 0600 themselves (safetensors renames a private temp file)
        for entry in [tmp, *tmp.rglob("*")]:
            if not entry.is_symlink():
                follow_umask(entry, folder=entry.is_dir())
        check_replaceable(path, {p.name for p in tmp.iterdir()} | set(own), fix)
        old = move_into_place(tmp, path)
    except BaseException as err:
        full = _is_disk_full(err, tmp)  # before the temp folder's space is given back
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(made)  # a failed or interrupted sae-diff left an empty <run>/diff/ in the run
        if full:
            raise _disk_full(path, err) from None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return path


def _remove_empty(folders: list[Path]) -> None:
    """Remove `folders` (deepest first) while they are empty: one that another process has written
    into since stays, with every folder above it."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def write_json(path: str | Path, obj: dict) -> Path:
    """JSON with NaN/Inf written as null (strict JSON readers choke on NaN)."""
    text = json.dumps(clean(obj), indent=2, sort_keys=True)
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def read_json(path: Path, fix: str, error: type[UserError] = UserError) -> dict:
    """A JSON object file, or one line (`error`, a UserError) naming the file, what is wrong with it
    and `fix`. The one reader of the project's JSON files: run.json, metrics.json, labels.json,
    labeling.json, a store's manifest.json and an SAE's cfg.json."""
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):  # a folder is the OSError below
            raise error(not_a_file(path, mode))
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{path} is missing; {fix}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise error(f"{path} is corrupt ({str(err).splitlines()[0]}); {fix}") from None
    except OSError as err:  # a folder in its place, no permission: was an IsADirectoryError traceback
        raise error(f"{path} cannot be read ({os_reason(err)}); {fix}") from None
    if not isinstance(obj, dict):
        raise error(f"{path} holds a JSON {type(obj).__name__}, not an object; {fix}") from None
    return obj
