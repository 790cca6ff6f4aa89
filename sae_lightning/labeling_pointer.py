"""Which labelling is a run's current one: ONE symbolic link, `<run>/current -> labelings/<id>`,
switched by one rename. Everything at the top of the run that shows the current labelling is a
fixed link through it (`<run>/report.html -> current/report.html`, and so on for features.parquet,
families.parquet, labels.json, summary.md and labeling.json), so a reader of the top level sees one
labelling whole or the next one whole, never a mix, and a kill at any point leaves one or the other.

A copy of a run made by a tool that follows links (shutil.copytree, cp -L) has `current/` as a
folder, labeling.json as a file and the top-level files as copies: labeling.json still names the
current labelling (its id must be a plain folder name inside labelings/), and the next labelling
or report makes the links again."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

from .atomic import fsync_dir, read_json, write_json
from .errors import UserError
from .labeling import Labeling, relabel_fix

LINK, LABELINGS = "current", "labelings"
_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
MIRRORED = (*Labeling.FILES, Labeling.POINTER)


def plain_id(value: object) -> bool:
    """A labelling id is a folder name inside labelings/: no path, no `..`, not hidden."""
    return isinstance(value, str) and len(value) <= 255 and bool(_PLAIN.fullmatch(value))


def current_id(root: Path) -> str | None:
    """The id `<run>/current` (else, in a copy that followed the link, the labeling.json file)
    names, checked to be a plain name; None when the run has no labelling pointer."""
    link, fix = root / LINK, relabel_fix(root)
    if link.is_symlink():
        target = Path(os.readlink(link))
        if len(target.parts) != 2 or target.parts[0] != LABELINGS or not plain_id(target.parts[1]):
            raise UserError(
                f"{link} points to {str(target)!r}, not to a labelling {LABELINGS}/<id> of this run; "
                f"point it at one (ln -sfn {LABELINGS}/<id> {link}) or {fix}"
            )
        return _not_a_link(root, target.parts[1], fix)
    pointer = root / Labeling.POINTER
    if not pointer.is_file():
        return None
    current = read_json(pointer, fix).get("current")
    if not plain_id(current):
        raise UserError(
            f"{pointer} names labelling {current!r}, which is not a plain folder name inside "
            f"{root / LABELINGS}; write the id of one of its labellings there or {fix}"
        )
    return _not_a_link(root, current, fix)


def _not_a_link(root: Path, current: str, fix: str) -> str:
    """The id, unless labelings/<id> is itself a link: it leads to another run's labelling (read as
    this run's, and written into by a relabel of a copy)."""
    entry = root / LABELINGS / current
    if entry.is_symlink():
        raise UserError(f"{entry} is a link to {os.readlink(entry)}, not a labelling of this run; {fix}")
    return current


def check_not_cut(root: Path) -> None:
    """A run with no labelling pointer whose top-level files still lead through `current` (so it was
    labelled): `current` was deleted or replaced by a file. One line naming the link and both ways
    back; readers took the run for unlabelled (sae-serve: 'label it first'). sae-label never asks:
    its switch makes the link again."""
    link = root / LINK
    if (root / Labeling.POINTER).is_symlink() and not link.is_dir():
        what = "is a file" if link.exists() or link.is_symlink() else "is missing"
        raise UserError(
            f"{link} {what}, not the link to the run's current labelling; point it at one "
            f"(ln -sfn {LABELINGS}/<id> {link}) or {relabel_fix(root)}"
        )


def switch(root: Path, labeling: Labeling) -> None:
    """Make `labeling` (a finished folder labelings/<id>/) the current one, in one rename. A copy
    whose labeling.json names no labelling of the run (one deleted, a link, a path) is what its
    one line tells the user to label again: the new labelling replaces it instead of that line
    coming back after the whole labelling."""
    with contextlib.suppress(UserError):
        _relink_copy(root)
    # current/ a folder that no labeling.json names (made by hand, or a copy that lost it): the
    # rename of the link over it was an IsADirectoryError after the whole labelling
    _drop_dereferenced_copy(root / LINK)
    _mirror_links(root)
    _replace_link(root / LINK, Path(LABELINGS) / labeling.id)


def mirror(root: Path) -> None:
    """Make sure the top-level files are the links through `current` (a copy that followed them)."""
    _relink_copy(root)
    if (root / LINK).is_symlink():
        _mirror_links(root)


def _replace_link(path: Path, target: Path) -> None:
    # The new link is made inside labelings/ and renamed over `path` (same file system, one rename):
    # a kill -9 between the two leaves its temp where the run's own files are not, for the next
    # labelling to sweep (RunDir._remove_abandoned). `target` is relative to `path`'s folder, which
    # is where the link is read from once renamed.
    tmp = path.parent / LABELINGS / f".{path.name}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, path)
    fsync_dir(path.parent)  # the switch itself survives a power cut


def _mirror_links(root: Path) -> None:
    """Each top-level mirror becomes (once) a link through `current`. While `current` names the
    labelling the old files are copies of, each replacement changes no content anyone reads."""
    for name in MIRRORED:
        dst, target = root / name, Path(LINK) / name
        if dst.is_symlink() and Path(os.readlink(dst)) == target:
            continue
        _replace_link(dst, target)


def _relink_copy(root: Path) -> None:
    """Give a copy of a run that followed the `current` link (current/ a folder, labeling.json a
    file) the link again, naming the labelling its labeling.json names."""
    if (root / LINK).is_symlink():
        return
    old = current_id(root)
    if old is None:
        return
    folder = root / LABELINGS / old
    if not folder.is_dir():
        raise UserError(
            f"{root / Labeling.POINTER} names labelling {old!r}, which is not under {root / LABELINGS}; "
            f"{relabel_fix(root)}"
        )
    write_pointer(Labeling(folder, old))
    _drop_dereferenced_copy(root / LINK)
    _replace_link(root / LINK, Path(LABELINGS) / old)


def check_link(root: Path) -> None:
    """Refuse, before a labelling is made, a `current/` folder that its switch could not replace."""
    _foreign_in_copy(root / LINK)


def _foreign_in_copy(path: Path) -> None:
    if not path.is_dir() or path.is_symlink():
        return
    foreign = [p.name for p in path.iterdir() if p.name not in MIRRORED or p.is_dir()]
    if foreign:
        raise UserError(
            f"{path} is a folder, not the link to the current labelling, and holds {foreign[0]}; "
            f"move it away, then {relabel_fix(path.parent)}"
        )


def _drop_dereferenced_copy(path: Path) -> None:
    """A run copied by a tool that follows links (shutil.copytree, cp -L) has `current/` as a
    folder: a copy of a labelling's files, derived like the top-level mirrors were. It is replaced
    by the link when it holds only a labelling's files; anything else in it is refused."""
    _foreign_in_copy(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)


def write_pointer(labeling: Labeling) -> None:
    """labelings/<id>/labeling.json: {"current": "<id>"}, what <run>/labeling.json shows through the link."""
    if not (labeling.folder / Labeling.POINTER).is_file():
        write_json(labeling.folder / Labeling.POINTER, {"current": labeling.id})
