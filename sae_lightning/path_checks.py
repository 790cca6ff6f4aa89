"""Output folders checked before anything is created: a folder path that names a file, a link that
leads nowhere, a name longer than the file system allows (ENAMETOOLONG), or a place where no folder
can be made (read-only, no permission, a file system such as /proc) is one line naming the setting
to change, not a traceback from deep inside Hydra's or our own mkdir. Input folders (a run, a
store) are checked the same way before they are read: one line for what this user cannot read."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Collection, Iterable
from pathlib import Path

from .errors import UserError

ROOM_INSIDE = 200  # bytes kept free under the folder for the files a run writes into it


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # ENAMETOOLONG: Path.exists lets it through
        return False


def _limits(path: Path) -> tuple[int, int]:
    """NAME_MAX and PATH_MAX of the file system the nearest existing ancestor is on."""
    probe = next((p for p in path.parents if _exists(p)), Path("/"))
    try:
        return os.pathconf(probe, "PC_NAME_MAX"), os.pathconf(probe, "PC_PATH_MAX")
    except (OSError, ValueError):
        return 255, 4096


def file_in_the_way(path: Path) -> Path | None:
    """The file (not folder) that `path` or one of its parents is, which no folder can be made under."""
    return next((p for p in (path, *path.parents) if _exists(p) and not p.is_dir()), None)


def os_reason(err: OSError) -> str:
    """An OSError's reason in words, without its errno and path."""
    return os.strerror(err.errno) if err.errno else str(err)


def entries_besides(folder: Path, names: Collection[str] = ()) -> list[str]:
    """The names of what `folder` holds other than `names`, sorted ([] where it is no folder): what
    a command that writes there would mix its files into."""
    return sorted(p.name for p in folder.iterdir() if p.name not in names) if folder.is_dir() else []


def some_of(names: list[str], most: int = 3) -> str:
    """The first `most` names, then "..." where there are more: a folder's entries in a one-line message."""
    return ", ".join(names[:most]) + (", ..." if len(names) > most else "")


_NOT_FILES = {
    stat.S_IFIFO: "a named pipe",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a device",
    stat.S_IFBLK: "a device",
}


def not_a_file(path: str | Path, mode: int) -> str:
    """The line for a named pipe, socket or device where a reader expects a file (os.stat's mode):
    opening a named pipe waits for a writer, so its reader hung, or took it for missing (is_file)."""
    what = _NOT_FILES.get(stat.S_IFMT(mode), "something else")
    return f"{path} is {what}, not a file, and reading it would wait for ever; put the file back in its place"


def check_readable(paths: Iterable[Path], fix: str) -> None:
    """Each of `paths` that is there can be read by this process (a folder listed and entered, a
    file opened; each folder given before what is in it), else one line naming the first that
    cannot, with `fix` when permission is what is missing. Python 3.11's Path.is_file and is_dir let
    EACCES and ENAMETOOLONG through, so a run or store of another user's (chmod 700) was a
    PermissionError traceback from whichever reader looked first. Tried for real, as
    _check_creatable does: permission bits say nothing for root. A named pipe, socket or device in
    a file's place is one line too (`not_a_file`): the readers of runs and stores open after this."""
    for path in paths:
        try:
            mode = os.stat(path).st_mode
            if stat.S_ISDIR(mode):
                os.listdir(path)
                os.stat(os.path.join(path, "."))  # entered, not only listed (a folder without x)
            elif stat.S_ISREG(mode):
                os.close(os.open(path, os.O_RDONLY))
            else:
                raise UserError(not_a_file(path, mode))
        except (FileNotFoundError, NotADirectoryError):
            continue  # not there: its reader names what is missing
        except OSError as err:
            denied = err.errno in (errno.EACCES, errno.EPERM)
            raise UserError(
                f"{path} cannot be read ({os_reason(err)}); {fix if denied else 'give a path that can be read'}"
            ) from None


def out_flag(text: str) -> str:
    """An --out value as the shell would have expanded it: `--out=~/x` reaches a command with its ~
    (bash expands it only at the start of a word), and the check below expanded it while the
    writers did not, making a folder named ~ in the current folder. An empty one (`--out "$DIR"`
    with DIR unset) is refused: sae-compare read it as no --out and wrote to its default, sae-diff
    and sae-export as the current folder."""
    if not text.strip():
        import argparse

        raise argparse.ArgumentTypeError("the folder is empty; give a folder path")
    return os.path.expanduser(text)


def named_folder(value: str | Path | None, setting: str) -> Path | None:
    """A folder given by name (None when not given). An empty name (a variable left empty) is
    refused: Path("") is the current folder, which train_sae(output_dir="") made the run."""
    if value is not None and not str(value).strip():
        raise UserError(f"{setting} is empty; give a folder, or leave {setting} out for its default")
    return None if value is None else Path(value)


def check_output_folder(path: str | Path, settings: str) -> None:
    """`path` can be created as a folder (or is one); `settings` names what chose it, for the fix."""
    folder = Path(path).expanduser().absolute()
    name_max, path_max = _limits(folder)
    for part in folder.parts:
        if len(os.fsencode(part)) > name_max:
            raise UserError(
                f"the folder name {part[:40]}... is {len(os.fsencode(part))} bytes long, over the "
                f"file system's {name_max}; shorten {settings}"
            )
    if len(os.fsencode(str(folder))) > path_max - ROOM_INSIDE:
        raise UserError(
            f"the output folder's path is {len(os.fsencode(str(folder)))} bytes long, over the "
            f"{path_max - ROOM_INSIDE} that leaves room for its files; shorten {settings}"
        )
    broken = next((p for p in (folder, *folder.parents) if p.is_symlink() and not _exists(p)), None)
    if broken is not None:  # mkdir and rename would fail on it only after the work, with a traceback
        raise UserError(
            f"{broken} is a link to {os.readlink(broken)}, which does not exist; "
            f"create that folder, remove the link or change {settings}"
        )
    blocker = file_in_the_way(folder)
    if blocker is not None:
        raise UserError(
            f"{blocker} is a file, not a folder, so {folder} cannot be the output folder; change {settings}"
        )
    _check_creatable(folder, settings)


def _check_creatable(folder: Path, settings: str) -> None:
    """A folder can be made where `folder` will be, or in it when it exists (a store cache, a resumed
    run and sae-compare's --out are written into): tried for real (a temp folder made and removed),
    since permission bits say nothing for root, and nothing says in advance that /proc takes no
    folders or that a folder is immutable (chattr +i)."""
    where = folder if folder.is_dir() else next((p for p in folder.parents if _exists(p)), Path("/"))
    try:
        os.rmdir(tempfile.mkdtemp(dir=where, prefix=".sae-lightning-probe-"))
    except OSError as err:
        reason = os_reason(err) if where == folder else f"{os_reason(err)} in {where}"
        what = "write in" if where == folder else "create"
        raise UserError(f"cannot {what} {folder} ({reason}); change {settings}") from None
