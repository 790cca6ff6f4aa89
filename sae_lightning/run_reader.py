"""Reading a finished run: the one place its files are parsed. The report, sae-compare, sae-diff,
sae-search, sae-serve, the API and the labelling all open a run through RunReader, so each file is
read one way, at most once per reader, and a bad one fails in one UserError line that names it.

RunDir (run_dir.py) names the files and writes them; this module reads them:

    info            run.json, checked to be a finished run's (store_path, val_fraction, seed)
    cfg             sae/cfg.json, our own names (relu, batchtopk) over SAELens' (standard, jumprelu)
    W_dec           the decoder rows of sae/sae_weights.safetensors, [d_sae, d_in] float32
    log10_density   sae/sparsity.safetensors (None when the run has none)
    features        the labelling's features.parquet: `feature_columns` (column -> list), a DataFrame,
                    or some of its columns (`features_of`)
    families        the labelling's families.parquet (column -> list), None when it has none
    domain_shares   features.parquet's domain_shares column, parsed: one {domain: share} per row
    store, sae()    the embedding store run.json names and the SAE on a device
    trained()       what the labelling starts from: run.json, store, SAE and the train/val split

Nothing here writes into the run."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .atomic import read_json
from .devices import check_device
from .errors import UserError
from .run_dir import Labeling, RunDir
from .run_schema import OWN_CONFIG_KEY
from .schemas.knobs import SEED, Rule
from .schemas.training import DataConfig

if TYPE_CHECKING:  # torch, pandas and pyarrow load on first use: a reader of run.json alone stays light
    import pandas as pd
    import pyarrow as pa

    from .data.store import EmbeddingStore
    from .models import SparseAutoencoder

RUN_KEYS = ("store_path", "val_fraction", "seed")  # what run.json must hold for the stages after training


def _run_key_rules() -> dict[str, Rule]:
    """What each of RUN_KEYS must be: the rules of the settings training wrote them from."""
    val_fraction = next(f for f in fields(DataConfig) if f.name == "val_fraction")
    path = Rule("a path (a non-empty string)", lambda v: isinstance(v, str) and bool(v.strip()))
    return {"store_path": path, "val_fraction": val_fraction.metadata["rule"], "seed": SEED}


def finished_run_info(run_dir: str | Path) -> dict:
    """run.json, checked; one line naming what makes `run_dir` not a finished run, and the way out."""
    run = RunDir(run_dir)
    run.check_readable()  # before any is_file below, which lets a PermissionError through
    if not run.root.is_dir():
        what = "it is a file, not a folder" if run.root.exists() else "the folder does not exist"
        raise UserError(f"{run.root} is not a run dir: {what}; give the folder of a finished run")
    if not run.has_export() and run.last_ckpt.is_file():
        raise UserError(
            f"{run.root} has not finished training (no sae/ or no readable metrics.json, but a checkpoint): "
            f"`sae-train run_dir={run.root} ckpt_path=last` recovers it"
        )
    missing = [f for f in RunDir.FINISHED[:2] if not (run / f).is_file()]
    info: dict = {}
    if not run.run_file.is_file():
        missing.append(RunDir.RUN)
    else:
        info = run.run_info()
        missing += [f"{RunDir.RUN}:{key}" for key in RUN_KEYS if key not in info]
        # a value of another type (seed "abc", val_fraction 5) was a ValueError in the split
        bad = [(k, r) for k, r in _run_key_rules().items() if k in info and not r.accepts(info[k])]
        if bad:
            key, rule = bad[0]
            raise UserError(
                f"{run.run_file} holds {key}={info[key]!r}, not {rule.what}; it is written when a run "
                "starts: restore it from a copy of the run, or start the run again"
            )
    if missing:
        raise UserError(
            f"{run.root} is not a finished run: missing {', '.join(missing)} "
            "(a run dir needs sae/cfg.json, sae/sae_weights.safetensors and run.json "
            "with store_path, val_fraction and seed)"
        )
    return info


def parse_shares(value: Any) -> dict[str, float]:
    """One row of features.parquet's domain_shares (a JSON object string, domain -> share) as a
    dict of its positive finite shares; {} for an empty or unreadable value."""
    if not isinstance(value, str) or not value.strip():
        return {}
    try:
        value = json.loads(value)
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    out = {}
    for k, s in value.items():
        try:
            s = float(s)
        except (TypeError, ValueError):
            continue
        if math.isfinite(s) and s > 0:
            out[str(k)] = s
    return out


@dataclass
class TrainedRun:
    """A finished run opened for the stages after training (labels, families)."""

    info: dict  # run.json
    store: EmbeddingStore
    sae: SparseAutoencoder
    train_idx: np.ndarray
    val_idx: np.ndarray


class RunReader:
    """One run's files, each read on first use and kept. `labeling`: the labelling to read
    (default: the run's current one, None when it is not labelled)."""

    def __init__(self, root: str | Path, labeling: Labeling | None = None) -> None:
        if not isinstance(root, (str, os.PathLike)):
            raise UserError(f"a run folder is a path (str or Path), got {type(root).__name__}")
        self.dir = RunDir(Path(root).expanduser())
        self.dir.check_readable()  # what it opens: a named pipe there hung the reader, a chmod 700 run was a traceback
        self.root = self.dir.root
        self._labeling = labeling
        self._saes: dict[str, SparseAutoencoder] = {}

    def relabelled(self) -> RunReader:
        """A reader of the run's current labelling now (after a relabel), sharing what a relabel
        does not change: run.json, cfg.json, the weights, the store and the loaded SAEs."""
        new = RunReader(self.root)
        for name in ("info", "cfg", "_weights", "log10_density", "store"):
            if name in self.__dict__:
                new.__dict__[name] = self.__dict__[name]
        new._saes = self._saes
        return new

    # ---- the training's files ---------------------------------------------------------------------
    @cached_property
    def info(self) -> dict:
        return finished_run_info(self.root)

    @cached_property
    def cfg(self) -> dict:
        cfg = read_json(self.dir.sae / RunDir.SAE_CFG, "the SAE files are damaged: retrain the run")
        own = cfg.get(OWN_CONFIG_KEY)
        return {**cfg, **own} if isinstance(own, dict) else cfg

    @cached_property
    def _weights(self) -> dict:
        from .models.saelens_files import read_safetensors

        return read_safetensors(self.dir.sae / RunDir.SAE_WEIGHTS)

    @property
    def W_dec(self) -> np.ndarray:
        """The decoder, [d_sae, d_in] float32 (bfloat16 files too: read through torch)."""
        W = self._weights.get("W_dec")
        if W is None or W.ndim != 2:
            raise UserError(f"{self.dir.sae / RunDir.SAE_WEIGHTS} holds no 2-D W_dec; retrain the run")
        return W.float().numpy()

    @cached_property
    def log10_density(self) -> np.ndarray | None:
        """Training's log10 firing density per feature (sparsity.safetensors), None without the file."""
        from .models.saelens_files import read_safetensors

        path = self.dir.sae / RunDir.SPARSITY
        if not path.is_file():
            return None
        sparsity = read_safetensors(path).get("sparsity")
        return None if sparsity is None else sparsity.float().numpy()

    @cached_property
    def store(self) -> EmbeddingStore:
        from .data.store import MANIFEST, EmbeddingStore, check_store_readable

        path = Path(self.info["store_path"]).expanduser()
        check_store_readable(path)  # before is_file, which lets a PermissionError through
        if not (path / MANIFEST).is_file():  # the store's own line said "run `sae-embed`", which builds the default
            # a run trained from Python (train_sae) has no .hydra/: its line named a file that is not there
            overrides = self.root / ".hydra" / "overrides.yaml"
            recorded = f"run.json's {self.info.get('domain')} and {self.info.get('model_name')}"
            where = overrides if overrides.is_file() else recorded
            raise UserError(
                f"the store {self.root} was trained on, {path} (run.json's store_path), is not here: copy it "
                f"from where the run was trained, or build it again with sae-embed and the run's domain and "
                f"embedder settings ({where}) and set store_path to it"
            )
        return EmbeddingStore(path)

    def sae(self, device: str | None = None) -> SparseAutoencoder:
        """The run's SAE on `device` (default cpu), loaded once per device."""
        from .models import SparseAutoencoder

        device = device or "cpu"
        if device not in self._saes:
            check_device(device, "device")
            self._saes[device] = SparseAutoencoder.load(self.dir.sae, device=device)
        return self._saes[device]

    def trained(self, device: str | None = None) -> TrainedRun:
        """The run's store, SAE (on `device`, default cpu) and split, checked against each other."""
        from .data.split import split_indices

        info, store, sae = self.info, self.store, self.sae(device)
        if sae.cfg.d_in != store.dim:
            raise UserError(
                f"{self.root}: the SAE reads d_in={sae.cfg.d_in} but the store {store.path} holds "
                f"{store.dim}-dimensional embeddings; run.json points at the wrong store"
            )
        train_idx, val_idx = split_indices(len(store), float(info["val_fraction"]), int(info["seed"]))
        return TrainedRun(info, store, sae, train_idx, val_idx)

    # ---- the labelling's files --------------------------------------------------------------------
    @cached_property
    def labeling(self) -> Labeling | None:
        return self._labeling or self.dir.labeling()

    @cached_property
    def feature_table(self) -> pa.Table | None:
        """The labelling's features.parquet (None when the run is not labelled)."""
        return self.labeling.read_table(Labeling.FEATURES) if self.labeling is not None else None

    @cached_property
    def feature_columns(self) -> dict[str, list] | None:
        """features.parquet as {column: Python list}, list columns as lists."""
        return _columns(self.feature_table)

    @cached_property
    def features(self) -> pd.DataFrame | None:
        return None if self.feature_table is None else self.feature_table.to_pandas()

    def features_of(self, columns: list[str]) -> pd.DataFrame | None:
        """Those of `columns` that features.parquet has, read alone (sae-search needs four of its
        columns, not the top texts) unless the whole table is read already."""
        if self.labeling is None:
            return None
        if "feature_table" in self.__dict__:
            table = self.feature_table
            return table.select([c for c in columns if c in table.column_names]).to_pandas()
        return self.labeling.read_table(Labeling.FEATURES, columns).to_pandas()

    @cached_property
    def families(self) -> dict[str, list] | None:
        """families.parquet as {column: list}; None when the labelling has none."""
        if self.labeling is None or not self.labeling.families.is_file():
            return None
        return _columns(self.labeling.read_table(Labeling.FAMILIES))

    @cached_property
    def domain_shares(self) -> list[dict[str, float]] | None:
        """Per row of features.parquet its {domain: share}; None without the column."""
        cols = self.feature_columns
        if cols is None or "domain_shares" not in cols:
            return None
        return [parse_shares(v) for v in cols["domain_shares"]]


def _columns(table: pa.Table | None) -> dict[str, list] | None:
    return None if table is None else {name: table.column(name).to_pylist() for name in table.column_names}
