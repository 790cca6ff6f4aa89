"""Precomputed embeddings with no texts: an (N, d) float `.npy`, optional metadata alongside."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...schemas.domain import NpyConfig
from ..model_packages import sha256_of
from .corpus import Source, SourceError

NPY_MAGIC = b"\x93NUMPY"  # how every file numpy.save writes begins


def load_npy(path: str | Path, mmap: bool = True) -> np.ndarray:
    path = Path(path).expanduser()
    if not path.is_file():
        raise SourceError(f"domain.path={path}: no such .npy file")
    with open(path, "rb") as fh:  # else numpy takes any other file for a pickle and suggests allow_pickle
        if fh.read(len(NPY_MAGIC)) != NPY_MAGIC:
            raise SourceError(
                f"{path} is not a .npy file (no numpy header); point domain.path at an (N, d) float "
                "array saved with numpy.save"
            )
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as err:
        raise SourceError(f"{path} is not a readable .npy file ({str(err).splitlines()[0]})") from err
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.floating) or arr.shape[0] == 0:
        raise SourceError(
            f"{path} holds a {arr.dtype} array of shape {arr.shape}; expected a 2-D float array (N texts x d dims)"
        )
    return arr


class NpyEmbeddings(Source):
    """Embeddings made elsewhere. `metadata` (csv/parquet with id/text/domain columns, one row per
    embedding) is optional; without it ids are row numbers and every row has `domain`."""

    config_class = NpyConfig

    @property
    def path(self) -> str:
        return str(self.cfg.path)  # Hydra reads a path of digits as a number

    def rows(self, n: int) -> int:
        """How many of the file's `n` embeddings the source uses: all, or the first `limit`."""
        return n if self.cfg.limit is None else min(n, self.cfg.limit)

    def fingerprint_parts(self) -> dict:
        """What, besides the .npy's bytes, makes the store: the metadata file's content (not its
        path: an edited file must not reuse the old store), the model name, domain and limit."""
        cfg, meta = self.cfg, None
        if cfg.metadata:
            p = Path(cfg.metadata).expanduser()
            if not p.is_file():
                raise SourceError(f"domain.metadata={p}: no such file")
            meta = sha256_of(p)
        return {"metadata": meta, "model_name": cfg.model_name, "domain": cfg.domain, "limit": cfg.limit}

    def load_metadata(self, n: int) -> pd.DataFrame:
        cfg = self.cfg
        if not cfg.metadata:
            return pd.DataFrame({"id": [str(i) for i in range(n)], "text": [""] * n, "domain": [cfg.domain] * n})
        p = Path(cfg.metadata).expanduser()
        if not p.is_file():
            raise SourceError(f"domain.metadata={p}: no such file")
        try:
            frame = pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p)
        except Exception as err:
            raise SourceError(f"{p} cannot be parsed: {str(err).splitlines()[0]}") from err
        if len(frame) != n:
            raise SourceError(
                f"{p} has {len(frame)} rows but {self.path} has {n} embeddings; they must match one to one"
            )
        if "text" not in frame:  # else a run with no texts, nothing to label, and no word of why
            raise SourceError(
                f"domain.metadata={p} has no text column (it has {', '.join(map(str, frame.columns))}); "
                "name the texts' column `text`, or drop domain.metadata"
            )
        frame = frame.copy()
        frame["id"] = frame["id"].astype(str) if "id" in frame else [str(i) for i in range(n)]
        frame["text"] = frame["text"].fillna("").astype(str)
        frame["domain"] = frame["domain"].astype(str) if "domain" in frame else cfg.domain
        return frame[["id", "text", "domain"]].reset_index(drop=True)
