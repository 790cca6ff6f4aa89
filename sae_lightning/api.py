"""The public Python API: load a finished run, encode texts into its features, look features up,
and train from Python, without writing a Hydra command line.

    import sae_lightning as sl

    run = sl.Run.load("outputs/train/runs/wiki_all/2025-01-01_12-00-00")   # or sl.latest_run()
    z = run.encode(["Euler proved the formula.", "The empire fell."])      # [2, d_sae], k nonzero per row
    run.top_features("The theorem is proved by induction.", k=5)           # feature_id, activation, label, scores
    run.feature(123).top_texts                                             # activation, domain, text
    run = sl.train_sae(embeddings, sae="relu", trainer={"max_epochs": 3}) # a (N, d) float array or a store

`train_sae` composes the same YAML config as `sae-train` (conf/config.yaml and its groups) and runs the same pipeline,
so its defaults are the command line's. Bad input (an array that is not 2-D float, an unfinished run, a feature id out
of range, an unknown setting) raises `sae_lightning.errors.UserError` with one line that names the problem and the fix.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .data.store import EMBEDDINGS, METADATA, EmbeddingStore, first_bad_row
from .errors import UserError
from .path_checks import named_folder
from .run_dir import OUTPUTS_ENV, Labeling, RunDir
from .run_reader import RunReader, finished_run_info, parse_shares
from .run_schema import INTERPRETABLE, TRUST_COLUMNS
from .search import (
    SearchRun,
    check_clamp,
    check_counts,
    check_features,
    embed_query,
    encode,
    find_features,
    nearest_texts,
    one_query,
    open_run,
    parse_clamps,
    steer,
)

RUN_DIR_ENV = "SAE_RUN_DIR"  # a run folder, or a folder of runs (the newest finished one is used)


@dataclass(frozen=True)
class Feature:
    """One SAE feature as the run's labelling saw it (features.parquet)."""

    id: int
    label: str  # "" when the run has no labels or the feature is dead
    keywords: list[str]
    density: float  # share of training samples it fires on (NaN without labels)
    dead: bool
    top_texts: pd.DataFrame  # its top-activating training texts: activation, domain, id, text
    domain_shares: dict[str, float] = field(default_factory=dict)  # its activation mass per domain
    scores: dict[str, object] = field(default_factory=dict)  # verdict, label_score, label_auroc, ... (when present)
    verdict: str = ""  # interpretable, mixed, token, weak or dead (run_schema.VERDICTS); "" when not labelled

    @property
    def interpretable(self) -> bool:
        """Whether its label can be read as a theme (a token feature's names a word-piece, a mixed one's nothing)."""
        return self.verdict == INTERPRETABLE


class Run:
    """A finished run folder: its SAE, current labelling, embedding store and embedding model.

    metrics   the training metrics (metrics.json's "metrics": fve, l0, dead_frac, ...)
    labels_summary  the current labelling's summary (labels.json's "labels": label_auroc_mean, n_interpretable, ...)
    labeling  the current labelling (its folder, id, settings()), None when unlabelled; labelings() all of them
    features  its features.parquet, one row per feature (None when unlabelled)"""

    def __init__(
        self,
        path: Path,
        search: SearchRun,
        features: pd.DataFrame | None,
        metrics: dict,
        labeling: Labeling | None = None,
    ) -> None:
        self.path, self._search, self.metrics = path, search, metrics
        self.labeling = labeling
        self.labels_summary = labeling.summary() if labeling is not None else {}
        self.features = features
        self.sae, self.store = search.sae, search.store

    @classmethod
    def load(cls, path: str | Path | RunReader, device: str = "cpu") -> Run:
        """Open a finished run folder (sae/, run.json, metrics.json), or a reader of one; UserError
        in one line otherwise."""
        reader = path if isinstance(path, RunReader) else RunReader(path)
        check_finished(reader.root)
        features = reader.features  # read whole first: search's columns then come from it
        return cls(reader.root, open_run(reader, device=device), features, reader.dir.metrics(), reader.labeling)

    def labelings(self) -> list[Labeling]:
        """Every labelling of the run, oldest first (each with its settings() and summary())."""
        return RunDir(self.path).labelings()

    @property
    def model_name(self) -> str:
        """The sentence-transformers model that embedded the store (and embeds queries)."""
        return self.store.model_name

    @property
    def d_sae(self) -> int:
        return int(self.sae.cfg.d_sae)

    @property
    def labels(self) -> list[str]:
        """The label of every feature by id ("" where none), as the labelling wrote it: a mixed or weak
        feature's says so first ("mixed: …"), a token feature's names its pattern ('token: "cr…"',
        'numbers: 1924, 1937'); `verdicts` holds each feature's verdict."""
        return self._search.labels

    @property
    def verdicts(self) -> list[str]:
        """The verdict of every feature by id ("" where the run has none)."""
        return self._search.verdicts

    def embed(self, texts: str | Sequence[str]) -> np.ndarray:
        """Texts -> embeddings, with the run's model, embedded exactly as the store's texts were."""
        texts = check_texts(texts)
        if texts == []:  # no texts; "" is one text, embedded like any other
            return np.zeros((0, self.sae.cfg.d_in), np.float32)
        return embed_query(self._search.query_encoder, texts, self._search.normalize)

    def encode(self, texts: str | Sequence[str] | np.ndarray) -> np.ndarray:
        """Texts -> feature activations: [d_sae] for one text, [n, d_sae] for a list (mostly zeros).
        An array or tensor is taken as embeddings the run's model made (encode_embeddings)."""
        if isinstance(texts, np.ndarray) or hasattr(texts, "detach"):
            z = self.encode_embeddings(texts)
            return z[0] if np.ndim(texts) == 1 else z
        if check_texts(texts) == []:
            return np.zeros((0, self.d_sae), np.float32)
        z = self.encode_embeddings(self.embed(texts))
        return z[0] if isinstance(texts, str) else z

    def encode_embeddings(self, embeddings) -> np.ndarray:
        """Embeddings [n, d_in] (or [d_in]) made by the run's model -> activations [n, d_sae]."""
        x = as_float_matrix(embeddings, "embeddings", allow_vector=True)
        if x.shape[1] != self.sae.cfg.d_in:
            raise UserError(
                f"embeddings are {x.shape[1]} wide but this SAE reads {self.sae.cfg.d_in}; "
                f"embed them with {self.model_name} (run.encode(texts) does)"
            )
        return encode(self.sae, x).cpu().numpy()

    def top_features(self, text: str, k: int = 10) -> pd.DataFrame:
        """The k features the text turns on most: feature_id, activation, label and, when the run
        has them, its verdict and label scores (TRUST_COLUMNS). Fewer rows when fewer fire."""
        check_counts(k=k)
        if not isinstance(text, str):
            raise UserError(f"text must be a string, got {type(text).__name__}; top_features takes one text")
        hits = find_features(
            self.sae, self._search.query_encoder, text, k, self.labels, self._search.normalize, self._search.verdicts
        )
        if self.features is not None:
            by_id = self.features.set_index("feature_id")
            for col in (c for c in TRUST_COLUMNS if c in by_id.columns):
                hits[col] = by_id[col].reindex(hits["feature_id"]).to_numpy()
        return hits

    def feature(self, i: int) -> Feature:
        """Feature `i` (0 <= i < d_sae) with its label, keywords, top texts and domain shares."""
        check_features([i], self.d_sae)
        i = int(i)
        rows = self.features[self.features["feature_id"] == i] if self.features is not None else []
        if not len(rows):
            empty = pd.DataFrame(columns=["activation", "domain", "id", "text"])
            return Feature(i, "", [], float("nan"), False, empty)
        row, lab = rows.iloc[0], self.labeling
        top = {k: [] if (v := row.get(f"top_{k}s")) is None else list(v) for k in ("act", "domain", "id", "text")}
        if len({len(v) for v in top.values()}) > 1:  # a table edited by hand: was a ValueError from pandas
            raise UserError(f"{lab.features}: feature {i}'s top_* lists differ in length; {lab.fix}")
        top = pd.DataFrame(top).rename(columns={"act": "activation"})
        shares = parse_shares(row.get("domain_shares"))
        return Feature(
            i,
            row["label"] or "",
            list(row["keywords"]),
            float(row["density"]),
            bool(row["dead"]),
            top,
            shares,
            {c: getattr(row[c], "item", lambda: row[c])() for c in TRUST_COLUMNS if c in row.index},
            str(row.get("verdict") or ""),
        )

    def top_texts(self, i: int, n: int = 10) -> pd.DataFrame:
        """Feature `i`'s n top-activating training texts (activation, domain, id, text)."""
        check_counts(n=n)
        return self.feature(i).top_texts.head(n)

    def nearest_texts(self, query: str | np.ndarray, k: int = 10) -> pd.DataFrame:
        """The store's k texts closest (cosine) to one text or one embedding: row, cos, id, domain, text."""
        check_counts(k=k)
        query = one_query(query)  # one text, not empty, or one embedding
        emb = self.embed(query) if isinstance(query, str) else as_float_matrix(query, "query", True)[0]
        return nearest_texts(self.store, emb, k)

    def parse_clamps(self, items: Sequence[str]) -> dict[int, float]:
        """`sae-search --clamp` strings (FEATURE=VALUE, or FEATURE=Nx: N times its top train
        activation) -> {feature: value}; UserError in one line for a bad one."""
        return parse_clamps(items, self._search)

    def steer(self, text: str, clamp: Mapping[int, float]) -> np.ndarray:
        """The text's embedding with features set to the given values (x + decode(z') - decode(z))."""
        check_clamp(clamp, self.d_sae)  # before the model loads
        return steer(self.sae, self.embed(text), clamp)

    def __repr__(self) -> str:
        labelled = "labelled" if self.features is not None else "unlabelled"
        return f"Run({self.path}, {self.sae.cfg.architecture} d_sae={self.d_sae}, {labelled}, model={self.model_name})"


def check_finished(path: Path) -> None:
    """A run folder that training finished: its SAE, run.json and metrics.json are all there."""
    finished_run_info(path)  # the folder, sae/ and run.json, each named when missing
    if not RunDir(path).metrics_file.is_file():
        raise UserError(
            f"{path} is not a finished run: no {RunDir.METRICS} (training stopped before the end); "
            f"resume it with `sae-train run_dir={path} ckpt_path=last`"
        )


def check_texts(texts) -> str | list[str]:
    """A text or a list of texts, as given; one line for anything else (an array belongs to
    encode_embeddings, which takes embeddings)."""
    if isinstance(texts, str) or (isinstance(texts, (list, tuple)) and all(isinstance(t, str) for t in texts)):
        return texts if isinstance(texts, str) else list(texts)
    raise UserError(
        f"texts must be a string or a list of strings, got {type(texts).__name__}; "
        "pass embeddings to run.encode_embeddings"
    )


def as_float_matrix(data, what: str, allow_vector: bool = False) -> np.ndarray:
    """A 2-D finite float32 array from a numpy array or torch tensor, or one line on what is wrong."""
    if hasattr(data, "detach"):
        data = data.detach().cpu()
        # numpy has no bfloat16: a half-precision model's output is made float32 here, not refused
        data = (data.float() if data.is_floating_point() else data).numpy()
    arr = np.asarray(data)
    if allow_vector and arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.floating) or 0 in arr.shape:
        raise UserError(
            f"{what} must be a non-empty 2-D float array (N texts x d dims); got {arr.dtype} of shape {arr.shape}"
        )
    if (bad := first_bad_row(arr, max_abs=np.inf)) is not None:  # any scale: a query's cosine ignores it
        raise UserError(f"{what} hold {bad[1]} (first at row {bad[0]}); clean them first")
    return arr.astype(np.float32, copy=False)


def find_runs(root: str | Path) -> list[Path]:
    """Finished run folders under `root` (itself included), oldest first."""
    root = Path(root).expanduser()
    found = [p.parent for p in root.glob(f"**/{RunDir.METRICS}")] + [root]
    finished = {p for p in found if RunDir(p).finished_and_readable()}
    return sorted(finished, key=_exported_at)


def run_roots() -> list[Path]:
    """Where runs are looked for: $SAE_RUN_DIR, else $SAE_LIGHTNING_OUTPUTS, ./outputs and the
    repository's outputs/ (beside the package in a clone), so a notebook finds them from any folder."""
    if os.environ.get(RUN_DIR_ENV):
        return [Path(os.environ[RUN_DIR_ENV])]
    roots = [Path(os.environ[OUTPUTS_ENV])] if os.environ.get(OUTPUTS_ENV) else []
    return roots + [Path.cwd() / "outputs", Path(__file__).resolve().parent.parent / "outputs"]


def latest_run(device: str = "cpu") -> Run:
    """The newest finished run under run_roots() (SAE_RUN_DIR picks a run or a folder of runs)."""
    roots = run_roots()
    runs = [run for root in roots for run in find_runs(root)]
    if not runs and not RunDir(roots[0]).run_file.is_file():  # SAE_RUN_DIR a run: Run.load says what it lacks
        where = ", ".join(str(r.resolve()) for r in roots)
        raise UserError(f"no finished run under {where}; run `make run` first, or set {RUN_DIR_ENV} to a run folder")
    return Run.load(max(runs, key=_exported_at) if runs else roots[0], device=device)


def _exported_at(path: Path) -> float:
    return RunDir(path).metrics_file.stat().st_mtime


# ---- training from Python ------------------------------------------------------------------------


def train_sae(embeddings, /, *overrides: str, output_dir: str | Path | None = None, **settings) -> Run:
    """Train an SAE on `embeddings` with the real pipeline and config; return the finished run.

    embeddings  a (N, d) float array (numpy or torch), a .npy file, or an embedding store
                (an EmbeddingStore or its folder): rows are the training samples.
    overrides   Hydra overrides as on the command line: "sae.d_sae=512", "sae=relu".
    settings    the same as keywords: a config group's choice (sae="relu"), a value per knob in a
                dict (sae={"d_sae": 512, "k": 16}, trainer={"max_epochs": 3}) or a top-level key (seed=1).
    output_dir  the run folder (default: outputs/train/runs/<domain>/<time>, as sae-train).

    Every default comes from conf/ (e.g. conf/sae/topk.yaml), exactly as for `sae-train`.
    """
    args = [*overrides, *settings_to_overrides(settings)]
    with data_overrides(embeddings) as domain_args:
        if any(a.split("=", 1)[0].lstrip("+~") in ("domain", "domain.path") for a in args):
            raise UserError("train_sae takes its data as the first argument; drop the domain= / domain.path= override")
        cfg = compose_train_config([*domain_args, *args], output_dir)
        from .pipeline import train

        train(cfg)
    return Run.load(cfg.paths.output_dir)


def compose_train_config(overrides: list[str], output_dir: str | Path | None = None):
    """conf/config.yaml with the overrides, as `sae-train` composes it, with the run folder its Hydra run would make."""
    from omegaconf import OmegaConf, open_dict
    from omegaconf.errors import OmegaConfBaseException

    from .hydra_setup import check_choices, check_output_folders, compose_config, new_run_suffix, register_hydra
    from .validate import check_config

    register_hydra()
    check_choices(overrides)
    new_run_suffix()  # two calls within a second get two folders
    cfg = compose_config("config", overrides)  # Hydra's errors in the lines sae-train prints for them
    try:
        out = named_folder(output_dir, "output_dir") or Path(OmegaConf.select(cfg, "hydra.run.dir"))
    except OmegaConfBaseException as err:  # a value of the folder's that does not resolve (task_name=${nope})
        raise UserError(f"bad setting: {' '.join(str(err).split())}") from None
    with open_dict(cfg):
        del cfg["hydra"]  # the Hydra runtime node resolves only inside a Hydra app
        cfg.paths.output_dir = str(out.expanduser().resolve())
    check_config(cfg)  # what sae-train checks, by the same rules
    chosen_by = "output_dir" if output_dir is not None else "paths.log_dir"
    # the folder as given: resolved, a link to nothing on the way (./outputs -> a gone disk) was made
    check_output_folders(cfg, out.expanduser(), chosen_by)
    if cfg.get("ckpt_path") is None:  # as sae-train's, before the store
        RunDir(cfg.paths.output_dir).check_free(chosen_by)  # an old run's folder, or one of yours
        RunDir(cfg.paths.output_dir).check_not_inside_a_run(chosen_by)
    return cfg


def settings_to_overrides(settings: Mapping[str, object], prefix: str = "") -> list[str]:
    """{"sae": {"d_sae": 64}, "seed": 1, "sae": "relu"} -> ["sae.d_sae=64", "seed=1", "sae=relu"]."""
    out: list[str] = []
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out += settings_to_overrides(value, name + ".")
        else:
            out.append(f"{name}={override_value(value)}")
    return out


def override_value(value: object) -> str:
    """A Python value in Hydra's override grammar (strings quoted when they need it)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    text = str(value)
    return text if re.fullmatch(r"[\w./-]+", text) else json.dumps(text)


@contextlib.contextmanager
def data_overrides(data) -> Iterator[list[str]]:
    """The `domain=npy` overrides that point the pipeline at `data`; an array is written to a
    temporary .npy for as long as the pipeline copies it into its store."""
    if isinstance(data, (str, Path)) and Path(data).expanduser().is_dir():
        data = EmbeddingStore(data)
    if isinstance(data, EmbeddingStore):
        yield [
            "domain=npy",
            f"domain.path={override_value(str(data.path / EMBEDDINGS))}",
            f"domain.metadata={override_value(str(data.path / METADATA))}",
            f"domain.model_name={override_value(data.model_name)}",
        ]
    elif isinstance(data, (str, Path)):
        yield ["domain=npy", f"domain.path={override_value(str(Path(data).expanduser()))}"]
    else:
        arr = as_float_matrix(data, "embeddings")
        with tempfile.TemporaryDirectory(prefix="sae-train-") as tmp:
            np.save(Path(tmp) / "embeddings.npy", arr)
            yield ["domain=npy", f"domain.path={override_value(str(Path(tmp) / 'embeddings.npy'))}"]
