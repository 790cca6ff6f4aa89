"""Which labelling is a run's current one: ONE symbolic link, `<run>/current -> labelings/<id>`,
switched by one rename. Everything at the top of the run that shows the current labelling is a
fixed link through it (`<run>/report.html -> current/report.html`, and so on for features.parquet,
families.parquet, labels.json, summary.md and labeling.json), so a reader of the top level sees one
labelling whole or the next one whole, never a mix, and a kill at any point leaves one or the other.

Runs written before the link existed (labeling.json a file, the top-level files hard links, or
the files of a run labelled before labelings/ at the top itself) are converted on their next
labelling, the old labelling staying current and whole until the switch: their labeling.json is
read (its id must be a plain folder name inside labelings/), and top-level files that are a
labelling of their own are first kept as one under labelings/ (LEGACY_ID), never overwritten."""
from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

from .atomic import atomic_write, fsync_dir, read_json, write_json
from .errors import UserError
from .labeling import Labeling

LINK, LABELINGS = "current", "labelings"
LEGACY_ID = "0000-00-00_00-00-00_legacy"  # sorts first: it was made before any labelling with a time
_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
MIRRORED = (*Labeling.FILES, Labeling.POINTER)


def plain_id(value: object) -> bool:
    """A labelling id is a folder name inside labelings/: no path, no `..`, not hidden."""
    return isinstance(value, str) and len(value) <= 255 and bool(_PLAIN.fullmatch(value))


def current_id(root: Path) -> str | None:
    """The id `<run>/current` (else the older labeling.json file) names, checked to be a plain
    name; None when the run has no labelling pointer."""
    link, fix = root / LINK, f"label the run again (sae-label run_dir={root})"
    if link.is_symlink():
        target = Path(os.readlink(link))
        if len(target.parts) != 2 or target.parts[0] != LABELINGS or not plain_id(target.parts[1]):
            raise UserError(f"{link} points to {str(target)!r}, not to a labelling {LABELINGS}/<id> of this run; "
                            f"point it at one (ln -sfn {LABELINGS}/<id> {link}) or {fix}")
        return target.parts[1]
    pointer = root / Labeling.POINTER
    if not pointer.is_file():
        return None
    current = read_json(pointer, fix).get("current")
    if not plain_id(current):
        raise UserError(f"{pointer} names labelling {current!r}, which is not a plain folder name inside "
                        f"{root / LABELINGS}; write the id of one of its labellings there or {fix}")
    return current


def switch(root: Path, labeling: Labeling) -> None:
    """Make `labeling` (a finished folder labelings/<id>/) the current one, in one rename."""
    _convert_older_layout(root)
    _mirror_links(root)
    _replace_link(root / LINK, Path(LABELINGS) / labeling.id)


def mirror(root: Path) -> None:
    """Make sure the top-level files are the links through `current` (a run written before them)."""
    _convert_older_layout(root)
    if (root / LINK).is_symlink():
        _mirror_links(root)


def _replace_link(path: Path, target: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
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
        # hard links the older mirror left as temp files (a rename onto the same inode does nothing)
        for stale in root.glob(f".{Path(name).stem}.*.tmp{Path(name).suffix}"):
            if stale.is_file() and stale.stat().st_nlink > 1:
                stale.unlink()
        if dst.is_symlink() and Path(os.readlink(dst)) == target:
            continue
        _replace_link(dst, target)


def _convert_older_layout(root: Path) -> None:
    """Give a run written before the `current` link one, naming the labelling it has now (its
    labeling.json's, or its own top-level files kept as labelings/LEGACY_ID)."""
    if (root / LINK).is_symlink():
        return
    old = current_id(root)
    if old is None and (root / Labeling.FEATURES).is_file():  # labelled before labelings/: keep it
        old = LEGACY_ID
        folder = root / LABELINGS / old
        if not folder.is_dir():
            tmp = root / LABELINGS / f".{old}.{os.getpid()}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            for name in Labeling.FILES:
                if (root / name).is_file():
                    _link_or_copy(root / name, tmp / name)
            os.replace(tmp, folder)
    if old is None:
        return
    folder = root / LABELINGS / old
    if not folder.is_dir():
        raise UserError(f"{root / Labeling.POINTER} names labelling {old!r}, which is not under {root / LABELINGS}; "
                        f"label the run again (sae-label run_dir={root})")
    write_pointer(Labeling(folder, old))
    _drop_dereferenced_copy(root / LINK, folder)
    _replace_link(root / LINK, Path(LABELINGS) / old)


def _drop_dereferenced_copy(path: Path, folder: Path) -> None:
    """A run copied by a tool that follows links (shutil.copytree, cp -L) has `current/` as a
    folder: a copy of a labelling's files, derived like the top-level mirrors were. It is replaced
    by the link when it holds only a labelling's files; anything else in it is refused."""
    if not path.is_dir() or path.is_symlink():
        return
    foreign = [p.name for p in path.iterdir() if p.name not in MIRRORED or p.is_dir()]
    if foreign:
        raise UserError(f"{path} is a folder, not the link to the current labelling, and holds {foreign[0]}; "
                        f"move it away, then label the run again (sae-label run_dir={path.parent})")
    shutil.rmtree(path)


def write_pointer(labeling: Labeling) -> None:
    """labelings/<id>/labeling.json: {"current": "<id>"}, what <run>/labeling.json shows through the link."""
    if not (labeling.folder / Labeling.POINTER).is_file():
        write_json(labeling.folder / Labeling.POINTER, {"current": labeling.id})


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))
