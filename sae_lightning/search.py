"""Feature search and steering (O'Neill et al. 2024, section on steering queries).

    run = open_run("outputs/train/runs/wiki_all/...")
    find_features(run.sae, run.query_encoder, "prime numbers and divisibility", labels=run.labels)
    x = embed_query(run.query_encoder, "the fall of the Roman empire")
    x2 = steer(run.sae, x, {123: 0.8, 77: 0.0})     # feature 123 up, 77 off
    nearest_texts(run.store, x2, k=5)

Steering edits only what the SAE explains: x' = x + (decode(z') - decode(z)). Decoding z' alone
would also drop the SAE's reconstruction error x - decode(z), moving every query by it whether or
not a feature was touched; with the difference, clamping a feature to the value it already has
returns x unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .data import lean_encoder
from .data.embed import load_model, resolve_model
from .data.store import MANIFEST, EmbeddingStore
from .errors import UserError
from .models import SparseAutoencoder
from .run_reader import RunReader
from .run_schema import INTERPRETABLE
from .scan.top_examples import inference_sae

PRECOMPUTED = ("synthetic", "unknown")  # model names of stores that hold embeddings made without a model
# The largest |value| a clamp sets. Steering adds about that much of the feature's decoder direction
# to a query of norm ~1: far below this the steered query already points along the feature, while
# past ~1e19 its norm's square overflows float32 (every cosine read 0, the texts listed at random)
# and past ~3e38 the value itself does (a RuntimeError from torch).
MAX_CLAMP = 1e6
WHOLE = re.compile(r"-?[0-9]+")  # a whole number as a person or a URL writes one


@dataclass
class SearchRun:
    """What search and steering read from a finished run dir."""

    sae: SparseAutoencoder
    store: EmbeddingStore
    labels: list[str]  # per feature, as the labelling wrote it ("" where none or no features.parquet)
    verdicts: list[str]  # per feature ("" where the run has none)
    max_acts: np.ndarray  # per feature, its top train activation (NaN unknown): a scale for clamps
    normalize: bool  # whether the store's embeddings were unit-normalised (queries must match)

    @property
    def model(self):
        """The run's embedding model (loaded on first use, cached per process by load_model)."""
        name = self.store.model_name
        if name in PRECOMPUTED:
            raise UserError(
                f"the store {self.store.path} holds precomputed embeddings (model {name!r}); "
                "queries cannot be embedded the same way: pass embeddings to steer/nearest_texts"
            )
        return load_model(name, setting=self._model_setting)

    @property
    def _model_setting(self) -> str:
        """What names the model, for an error's fix: the store's manifest, not a setting of this command."""
        return f"model_name in {Path(self.store.path) / MANIFEST}"

    @property
    def query_encoder(self):
        """What embeds queries: the model run by torch alone where its folder has the common BERT
        shape (data/lean_encoder.py: the default model, without importing sentence-transformers or
        transformers), else `model`. Both give the same vectors, to float32 rounding."""
        if self.store.model_name not in PRECOMPUTED:
            lean = lean_encoder.load(resolve_model(self.store.model_name, self._model_setting))
            if lean is not None:
                return lean
        return self.model


def check_has_model(run: SearchRun, run_dir: str | Path, why: str) -> None:
    """A command that embeds texts with the run's model (sae-search, sae-export) refuses a run trained
    on precomputed embeddings in its own words (`why`: what it cannot do, and what to do instead)."""
    if run.store.model_name in PRECOMPUTED:
        raise UserError(f"{run_dir} was trained on precomputed embeddings (model {run.store.model_name!r}), so {why}")


def open_run(run: str | Path | RunReader, device: str = "cpu") -> SearchRun:
    """The run (a folder, or a reader of it) as search and steering read it."""
    reader = run if isinstance(run, RunReader) else RunReader(run)
    reader.info  # run.json, checked: one line naming what makes it not a finished run
    store, sae = reader.store, reader.sae(device)
    labels, max_acts = [""] * sae.cfg.d_sae, np.full(sae.cfg.d_sae, np.nan)
    verdicts = [""] * sae.cfg.d_sae
    if reader.labeling is not None:
        df = _checked_features(reader, sae.cfg.d_sae)
        column = df["verdict"] if "verdict" in df else [""] * len(df)
        for f, lab, acts, verdict in zip(df["feature_id"], df["label"], df["top_acts"], column):
            verdicts[f], labels[f] = str(verdict or ""), lab or ""
            max_acts[f] = float(acts[0]) if acts is not None and len(acts) else np.nan
    return SearchRun(sae, store, labels, verdicts, max_acts, bool(store.manifest.get("normalized", False)))


SEARCH_COLUMNS = ("feature_id", "label", "top_acts")  # of features.parquet; its verdict column may be missing


def _checked_features(reader: RunReader, d_sae: int) -> pd.DataFrame:
    """The columns of features.parquet search reads, its feature ids checked to be this SAE's;
    UserError naming the file and the fix."""
    df, path, fix = reader.features_of([*SEARCH_COLUMNS, "verdict"]), reader.labeling.features, reader.labeling.fix
    lacking = [c for c in SEARCH_COLUMNS if c not in df]
    if lacking:  # a table edited by hand or made elsewhere (was a KeyError)
        raise UserError(f"{path} has no {', '.join(lacking)} column; {fix}")
    ids = pd.to_numeric(df["feature_id"], errors="coerce")
    if ids.isna().any() or not ids.between(0, d_sae - 1).all():
        raise UserError(f"{path} holds feature ids outside 0..{d_sae - 1} of this SAE; {fix} or delete {path}")
    twice = ids[ids.duplicated()]
    if len(twice):  # rows of one feature: the API's reindex by id failed on them with a ValueError
        raise UserError(f"{path} lists feature {int(twice.iloc[0])} more than once; {fix} or delete {path}")
    return df.assign(feature_id=ids.astype(int))


def check_utf8(texts: Sequence[str], what: str) -> None:
    """Texts the tokenizer can take: a byte that is no UTF-8 reaches Python as a lone surrogate
    (a query typed in a Latin-1 terminal, a file read with surrogateescape), on which the tokenizer
    failed with a TypeError traceback."""
    for i, text in enumerate(texts):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            code = ord(text[err.start])
            shown = (
                f"the byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"the lone surrogate U+{code:04X}"
            )
            name = what if len(texts) == 1 else f"{what} #{i}"
            raise UserError(
                f"{name} holds {shown} at character {err.start}, which is not UTF-8 text; "
                "give it as UTF-8 (a UTF-8 terminal locale, or the file converted with iconv -t UTF-8)"
            ) from None


def check_query(query: str) -> str:
    """A query to search for, as given; one line when it is empty or only spaces (the API listed
    features and nearest texts for it: those of an embedding that means nothing in particular)."""
    if not query.strip():
        raise UserError("the query is empty; give a sentence to search for, e.g. 'the fall of the Roman empire'")
    return query


def embed_query(model, query: str | Sequence[str], normalize: bool = False) -> np.ndarray:
    """[d] for one query, [n, d] for a list; embedded as the store's texts were."""
    texts = [query] if isinstance(query, str) else list(query)
    check_utf8(texts, "the query" if isinstance(query, str) else "text")
    emb = model.encode(
        texts,
        convert_to_numpy=True,
        normalize_embeddings=normalize,
        show_progress_bar=False,
    ).astype(np.float32)
    return emb[0] if isinstance(query, str) else emb


def encode(sae, emb: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Dense latents [n, d_sae] of embeddings [d] or [n, d], inference mode, on the SAE's device."""
    with inference_sae(sae, None) as model:
        x = torch.as_tensor(np.asarray(emb, np.float32)).to(next(model.parameters()).device)
        return model.encode(x.reshape(-1, x.shape[-1])).float()


def find_features(
    sae,
    model,
    query: str,
    top: int = 10,
    labels: Sequence[str] | None = None,
    normalize: bool = False,
    verdicts: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The features the query activates: feature_id, activation, label ("" without labels), and
    with `verdicts` their verdict, the interpretable ones first (each group by activation), so a
    feature whose texts share only a word-piece or nothing is never the first answer to a query.
    Fewer than `top` rows when fewer features fire."""
    z = encode(sae, embed_query(model, check_query(query), normalize))[0].cpu().numpy()
    return strongest(z, top, labels, verdicts)


def strongest(
    z: np.ndarray, top: int = 10, labels: Sequence[str] | None = None, verdicts: Sequence[str] | None = None
) -> pd.DataFrame:
    """The `top` features of one activation vector [d_sae] that fire: feature_id, activation, label,
    and with `verdicts` their verdict, the interpretable ones first (each group by activation)."""
    ids = np.flatnonzero(z > 0)
    trusted = np.array([verdicts[i] == INTERPRETABLE for i in ids]) if verdicts is not None else np.ones(len(ids))
    ids = ids[np.lexsort((ids, -z[ids], ~trusted.astype(bool)))][:top]
    out = pd.DataFrame(
        {
            "feature_id": ids,
            "activation": z[ids].astype(np.float64),
            "label": [labels[i] if labels is not None else "" for i in ids],
        }
    )
    if verdicts is not None:
        out["verdict"] = [verdicts[i] for i in ids]
    return out


def steer(sae, query_emb: np.ndarray | torch.Tensor, clamp: Mapping[int, float]) -> np.ndarray:
    """The query embedding(s) with the chosen latents set to the given values: x + decode(z') - decode(z)."""
    check_clamp(clamp, sae.cfg.d_sae)
    x = np.asarray(query_emb, dtype=np.float32)
    z = encode(sae, x)
    z_new = z.clone()
    for f, value in clamp.items():
        z_new[:, int(f)] = float(value)
    with torch.no_grad():
        delta = (z_new - z) @ sae.W_dec.float()  # = decode(z') - decode(z); b_dec cancels
    return (x.reshape(-1, x.shape[-1]) + delta.cpu().numpy()).reshape(x.shape)


def _whole(v: object) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _brief(v: object) -> str:
    """A value in an error line: a scalar's repr (cut short), else its type (an array's repr spans lines)."""
    return repr(v)[:40] if isinstance(v, (int, float, str, np.generic, type(None))) else f"a {type(v).__name__}"


def check_features(ids, d_sae: int) -> None:
    """Feature ids are whole numbers in 0..d_sae-1 (1.5 is not feature 1)."""
    bad = [f for f in ids if not _whole(f) or not 0 <= int(f) < d_sae]
    if bad:
        if not _whole(bad[0]):
            raise UserError(f"feature {_brief(bad[0])} is not a feature id: use a whole number from 0 to {d_sae - 1}")
        raise UserError(f"feature {int(bad[0])} does not exist: this SAE has features 0..{d_sae - 1}")


def clamp_value_ok(v: object) -> bool:
    """A value a clamp may set: a finite number (not a bool) from -MAX_CLAMP to MAX_CLAMP."""
    return (
        not isinstance(v, (bool, np.bool_))
        and isinstance(v, (int, float, np.number))
        and bool(np.isfinite(v))
        and abs(v) <= MAX_CLAMP
    )


def check_clamp(clamp, d_sae: int) -> None:
    """{feature id: value}: whole ids in range, values clamp_value_ok (as --clamp's parser demands)."""
    if not isinstance(clamp, Mapping):
        raise UserError(f"clamp must be a mapping {{feature id: value}}, e.g. {{123: 0.5}}; got {_brief(clamp)}")
    check_features(clamp, d_sae)
    bad = [v for v in clamp.values() if not clamp_value_ok(v)]
    if bad:
        raise UserError(
            f"clamp value {_brief(bad[0])} is not a finite number from {-MAX_CLAMP:g} to {MAX_CLAMP:g}; "
            "give each feature a number, e.g. 0.5 or 0"
        )


def check_counts(**counts: int) -> None:
    """--top and -k of sae-search, k and n of the API: how many rows to list, a whole number >= 1."""
    for name, n in counts.items():
        if not _whole(n) or n < 1:
            raise UserError(f"{name} {_brief(n)}: must be 1 or more, a whole number (how many to list)")


def one_query(query):
    """`query` as given when it is one query (a text not empty); one line when it is several, since
    nearest_texts answers one (a list of texts was refused as an array of strings, without saying
    why, and an array of several embeddings was answered for its first row alone)."""
    if isinstance(query, str):
        return check_query(query)
    one = "nearest_texts takes one text or one embedding ([d] or [1, d])"
    if isinstance(query, (list, tuple)) and any(isinstance(q, str) for q in query):
        raise UserError(f"{one}, not a list of {len(query)} texts; call it once per text")
    if np.ndim(query) == 2 and len(query) > 1:
        raise UserError(f"{one}, not {len(query)} embeddings; call it once per row")
    return query


def nearest_texts(store: EmbeddingStore, emb: np.ndarray, k: int = 10, batch_size: int = 8192) -> pd.DataFrame:
    """The k store texts most cosine-similar to `emb` [d]: row, cos, id, domain, text (best first).
    Reads the memory map in batches, so the store never has to fit in RAM."""
    q = np.asarray(emb, dtype=np.float64).reshape(-1)  # float64: the norm of a large vector stays finite
    if q.shape[0] != store.dim:
        raise UserError(
            f"the query embedding is {q.shape[0]} wide but the store's are {store.dim}; "
            f"embed it with {store.model_name}, as the store's texts were"
        )
    q = (q / max(float(np.linalg.norm(q)), 1e-12)).astype(np.float32)
    best_rows, best_cos = np.zeros(0, np.int64), np.zeros(0, np.float32)
    for start in range(0, len(store), batch_size):
        X = np.asarray(store.embeddings[start : start + batch_size], dtype=np.float32)
        cos = X @ q / np.maximum(np.linalg.norm(X, axis=1), 1e-12)
        rows = np.concatenate([best_rows, start + np.arange(len(X))])
        cos = np.concatenate([best_cos, cos])
        keep = np.argsort(-cos, kind="stable")[:k]  # a running top-k: memory O(batch + k)
        best_rows, best_cos = rows[keep], cos[keep]
    meta = store.metadata().iloc[best_rows]
    return pd.DataFrame(
        {
            "row": best_rows,
            "cos": best_cos.astype(np.float64),
            "id": meta["id"].to_numpy(),
            "domain": meta["domain"].to_numpy(),
            "text": meta["text"].to_numpy(),
        }
    )


def whole(text: str) -> int:
    """A whole number written in ASCII digits; ValueError for anything else. int() also reads
    "5_0" (as 50), "+5" and other scripts' digits ("५"): a feature id typed so names no feature."""
    if not WHOLE.fullmatch(text.strip()):
        raise ValueError(text)
    return int(text)


def _number(text: str) -> float:
    """float() of an ASCII number without digit separators ("1_0" is no 10)."""
    if "_" in text or not text.isascii():
        raise ValueError(text)
    return float(text)


def parse_clamps(items: Sequence[str], run: SearchRun | None = None) -> dict[int, float]:
    """FEATURE=VALUE strings; VALUE may be `Nx`: N times the feature's top train activation (the
    scale a feature naturally reaches, known from features.parquet)."""
    if isinstance(items, str):  # one clamp given as a string: its characters are no clamps
        items = [items]
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
        raise UserError(f"clamps must be a list of FEATURE=VALUE strings, e.g. ['123=0.5']; got {_brief(items)}")
    out: dict[int, float] = {}
    for item in items:
        fid, _, val = item.partition("=")
        times = val.endswith("x")
        try:
            f, value = whole(fid), _number(val[:-1] if times else val)
        except ValueError:
            raise UserError(_clamp_syntax(item)) from None
        if run is not None:
            check_features([f], run.sae.cfg.d_sae)
        if f in out:  # `--clamp 5=1 --clamp 5=2`, `clamp=5=1&clamp=5=2`: the last one silently won
            raise UserError(f"--clamp {item!r}: feature {f} is clamped twice; give each feature one value")
        if times:
            scale = run.max_acts[f] if run is not None else np.nan
            if not np.isfinite(scale):
                raise UserError(
                    f"--clamp {item}: feature {f} has no known top activation (no features.parquet, "
                    f"or a dead feature); give the value itself, e.g. {f}=0.5"
                )
            value *= float(scale)
        if not clamp_value_ok(value):  # the value itself, or N times the top activation
            raise UserError(_clamp_syntax(item))
        out[f] = value
    return out


def _clamp_syntax(item: str) -> str:
    return (
        f"--clamp {item!r}: use FEATURE=VALUE with a finite number from {-MAX_CLAMP:g} to {MAX_CLAMP:g}, "
        "e.g. 123=0.5, 77=0, or 123=3x (3 times its top activation)"
    )
