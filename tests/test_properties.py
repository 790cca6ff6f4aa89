"""Property-based tests (Hypothesis) of bad input, through the commands' real entry points and the
Python API: over config values, input arrays (shapes, dtypes, NaN/Inf, 0-3 rows or dims) and text
columns (empty, unicode, control characters, huge). The one property: the command exits 0 with a
complete run (or store), or exits 2 with one line on stderr and nothing written; the API returns,
or raises one UserError line and writes nothing. Never a traceback, never a half-written folder.

Kept fast for `make test`: derandomized (the same examples every run, no database to commit), few
examples per property (EXAMPLES; docs/reference/reliability.md lists them), tiny models, the commands
called in this process (tests/cli_runner.py) instead of a new interpreter per example."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import sae_lightning as sl
from sae_lightning import cli
from sae_lightning.errors import UserError
from sae_lightning.run_dir import RunDir

from .cli_runner import NOT_OUTPUT, files_under, run_command

# Examples per property: what docs/reference/reliability.md reports.
EXAMPLES = {"npy_arrays": 12, "config_values": 15, "text_columns": 8, "api_arrays": 10, "api_queries": 30}
TINY = [
    "sae.d_sae=4",
    "sae.k=1",
    "logger=none",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "embedder.show_progress=false",
]


def _settings(name: str):
    return settings(
        max_examples=EXAMPLES[name],
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    )


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One store cache for all examples (a store made by one example may serve another)."""
    return tmp_path_factory.mktemp("prop_cache")


def _new(before: set[str], folder: Path) -> set[str]:
    return {f for f in files_under(folder) - before if not any(part in f for part in NOT_OUTPUT)}


def check_outcome(res, out: Path, cache: Path, cache_before: set[str], made: str = "run") -> None:
    """Exit 0 with a complete run (or store), or exit 2, one line on stderr, nothing written."""
    event(f"exit {res.code}")  # --hypothesis-show-statistics: how many examples finished, how many were refused
    if res.code == 0:
        if made == "run":
            runs = [p.parent for p in out.rglob(RunDir.RUN)]
            assert len(runs) == 1 and RunDir(runs[0]).missing() == [], (res.err[-2000:], files_under(out))
        else:
            assert any(f.endswith("manifest.json") for f in files_under(cache)), res.out
        return
    lines = [ln for ln in res.err.splitlines() if ln.strip() and "is deprecated" not in ln]
    assert res.code == 2, res.err[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.err[-3000:]
    assert not _new(set(), out), files_under(out)
    assert not _new(cache_before, cache), _new(cache_before, cache)


# ---- sae-train domain=npy over input arrays ----------------------------------------------------------

FLOAT_EDGES = st.sampled_from([0.0, -0.0, 1.0, -1e30, 1e30, 1e300, math.nan, math.inf, -math.inf, 5e-324])
ARRAYS = st.one_of(
    arrays(
        st.sampled_from([np.float16, np.float32, np.float64]),
        st.tuples(st.integers(0, 3), st.integers(0, 3)),
        elements=st.one_of(FLOAT_EDGES, st.floats(-10, 10, width=16)),
    ),
    arrays(
        st.sampled_from([np.float32, np.float64]),
        st.tuples(st.integers(16, 40), st.integers(1, 6)),
        elements=st.floats(-10, 10, width=32),
    ),
    arrays(st.sampled_from([np.int64, np.bool_, np.complex64]), st.tuples(st.integers(1, 3), st.integers(1, 3))),
    arrays(np.float32, st.one_of(st.tuples(st.integers(0, 4)), st.tuples(*[st.integers(1, 2)] * 3))),
)


@_settings("npy_arrays")
@given(arr=ARRAYS)
def test_sae_train_on_any_npy_array_finishes_or_refuses_in_one_line(arr, cache):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        np.save(tmp / "x.npy", arr)
        before = files_under(cache)
        res = run_command(
            cli.train,
            "sae-train",
            "domain=npy",
            f"domain.path={tmp / 'x.npy'}",
            *TINY,
            f"paths.log_dir={tmp / 'out'}",
            f"paths.cache_dir={cache}",
        )
        check_outcome(res, tmp / "out", cache, before)


# ---- sae-train over config values --------------------------------------------------------------------

# Each knob: values that should work, and (one draw in three) anything at all, most of it bad.
KNOBS = {
    "sae.d_sae": st.integers(2, 40),
    "sae.k": st.integers(1, 3),
    "data.batch_size": st.integers(1, 64),
    "data.val_fraction": st.floats(0, 0.9),
    "module.lr": st.floats(1e-5, 1.0),
    "seed": st.integers(0, 2**32 - 1),
    "data.shuffle": st.sampled_from(["auto", "full", "blocks"]),
    "module.warmup_steps": st.integers(0, 5),
    "sae.architecture": st.sampled_from(["relu", "topk", "batchtopk", "jumprelu"]),
    "domain.limit": st.integers(1, 50),
    "data.val_batch_size": st.integers(1, 64),
    "module.decay": st.sampled_from(["none", "cosine", "linear"]),
    "task_name": st.from_regex(r"[a-z0-9_]{1,8}", fullmatch=True),
    "domain.name": st.text(max_size=12),
    "sae.l1_coefficient": st.floats(0, 10),
    "data.block_rows": st.integers(1, 50),
}
ANYTHING = st.one_of(
    st.integers(-3, 70),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from(
        [
            "",
            "null",
            "true",
            "abc",
            "[0.5,0.9]",
            "../x",
            ".hidden",
            "a b",
            "${seed}",
            "${nope}",
            "1e3",
            "'quoted'",
            "[1]",
        ]
    ),
)


def _override(key: str, value) -> str:
    return f"{key}={repr(value) if isinstance(value, float) else value}"  # Hydra reads nan, inf, -inf


@_settings("config_values")
@given(data=st.data(), keys=st.lists(st.sampled_from([*KNOBS, "+sae.kk"]), min_size=1, max_size=3, unique=True))
def test_sae_train_with_any_config_values_finishes_or_refuses_in_one_line(data, keys, cache):
    changes = [
        _override(k, data.draw(st.one_of(KNOBS.get(k, ANYTHING), KNOBS.get(k, ANYTHING), ANYTHING), label=k))
        for k in keys
    ]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        np.save(tmp / "x.npy", rng.standard_normal((40, 8)).astype(np.float32))
        before = files_under(cache)
        res = run_command(
            cli.train,
            "sae-train",
            "domain=npy",
            f"domain.path={tmp / 'x.npy'}",
            *TINY,
            *changes,
            f"paths.log_dir={tmp / 'out'}",
            f"paths.cache_dir={cache}",
        )
        check_outcome(res, tmp / "out", cache, before)


# ---- sae-embed over text columns ---------------------------------------------------------------------

TEXTS = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "\x00", "\x1b]0;title\x07", "\r\n\t", "\u202e", "東京 Zürich 🙂", "word " * 5000]),
    st.text(alphabet=st.characters(categories=["Cc", "Cf", "Zs"]), max_size=10),
)


@_settings("text_columns")
@given(texts=st.lists(TEXTS, min_size=0, max_size=3), fmt=st.sampled_from(["csv", "parquet", "jsonl"]))
def test_sae_embed_on_any_text_column_finishes_or_refuses_in_one_line(texts, fmt, cache):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = tmp / f"t.{fmt}"
        frame = pd.DataFrame({"text": pd.Series(texts, dtype=object)})
        {
            "csv": lambda: frame.to_csv(path, index=False),
            "parquet": lambda: frame.to_parquet(path),
            "jsonl": lambda: frame.to_json(path, orient="records", lines=True),
        }[fmt]()
        before = files_under(cache)
        res = run_command(
            cli.embed,
            "sae-embed",
            "domain=files",
            f"domain.path={path}",
            "embedder.show_progress=false",
            f"paths.log_dir={tmp / 'out'}",
            f"paths.cache_dir={cache}",
        )
        check_outcome(res, tmp / "out", cache, before, made="store")


# ---- the Python API ----------------------------------------------------------------------------------


@_settings("api_arrays")
@given(arr=ARRAYS)
def test_train_sae_on_any_array_returns_a_run_or_one_user_error(arr, cache):
    with tempfile.TemporaryDirectory() as tmp:
        out, before = Path(tmp) / "run", files_under(cache)
        try:
            run = sl.train_sae(
                arr,
                "sae.d_sae=4",
                "sae.k=1",
                "logger=none",
                "trainer.max_epochs=1",
                "trainer.enable_progress_bar=false",
                paths={"cache_dir": str(cache)},
                output_dir=out,
            )
        except UserError as err:
            event("UserError")
            assert "\n" not in str(err) and not files_under(out) and not _new(before, cache), str(err)
            return
        event("a finished run")
        assert RunDir(run.path).missing() == [] and run.encode_embeddings(np.ones((1, arr.shape[1]))).shape == (1, 4)


@pytest.fixture(scope="module")
def api_run(tiny_labelled_run):
    """The session's labelled run (600 sentences, MiniLM, 128 features): texts can be embedded."""
    return sl.Run.load(tiny_labelled_run)


VALID_ARGS = st.one_of(
    st.integers(0, 127),
    st.integers(1, 20),
    st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=2),
    arrays(np.float32, st.tuples(st.integers(1, 2), st.just(384)), elements=st.floats(-1, 1, width=32)),
)
ARGS = st.one_of(
    VALID_ARGS,
    VALID_ARGS,
    st.integers(-5, 200),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
    st.lists(st.text(max_size=5), max_size=2),
    arrays(
        np.float32, st.tuples(st.integers(0, 2), st.sampled_from([383, 384, 385])), elements=st.floats(-1, 1, width=32)
    ),
)


@_settings("api_queries")
@given(
    method=st.sampled_from(
        ["feature", "top_texts", "encode", "encode_embeddings", "top_features_k", "nearest_texts_k", "steer"]
    ),
    arg=ARGS,
)
def test_a_runs_methods_return_or_raise_one_user_error(api_run, method, arg):
    calls = {
        "feature": lambda: api_run.feature(arg),
        "top_texts": lambda: api_run.top_texts(0, n=arg),
        "encode": lambda: api_run.encode(arg),
        "encode_embeddings": lambda: api_run.encode_embeddings(arg),
        "top_features_k": lambda: api_run.top_features("a text", k=arg),
        "nearest_texts_k": lambda: api_run.nearest_texts(np.ones(384, np.float32), k=arg),
        "steer": lambda: api_run.steer("a text", {arg: 1.0} if isinstance(arg, (int, float)) else arg),
    }
    before = files_under(api_run.path)
    try:
        calls[method]()
        event("returned")
    except UserError as err:
        event("UserError")
        assert "\n" not in str(err), str(err)
    assert files_under(api_run.path) == before
