"""The Python API's checks: train_sae checks what sae-train checks (the same rules, the same
code path), two runs in one second get two folders, and encode / top_features / feature refuse
what they cannot take in one line instead of guessing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import sae_lightning as sl
from sae_lightning.api import compose_train_config
from sae_lightning.errors import UserError

TINY = {"sae": {"d_sae": 32, "k": 4}, "trainer": {"max_epochs": 1, "enable_progress_bar": False}, "logger": "none"}


def _x(rows: int = 200, dim: int = 16) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((rows, dim)).astype(np.float32)


@pytest.fixture(scope="module")
def npy_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api_checks")
    return sl.train_sae(_x(), **TINY, paths={"cache_dir": str(tmp / "cache")}, output_dir=tmp / "run")


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"sae": {"k": 3.5}}, "sae.k=3.5 is invalid; set sae.k to a whole number >= 1"),
        ({"data": {"batch_size": 0}}, "data.batch_size=0 is invalid; set data.batch_size to a whole number >= 1"),
        ({"module": {"lr": float("nan")}}, "module.lr=nan is invalid"),
        ({"task_name": "../../x"}, "task_name=../../x is invalid"),
        ({"sae": {"d_sae": 10**10, "k": 4}}, "sae.d_sae=10000000000 at d_in=16"),
        ({"domain": {"limit": 0}}, "domain.limit=0 is invalid; set domain.limit to a whole number >= 1, or null"),
    ],
)
def test_train_sae_refuses_what_sae_train_refuses(settings, message, tmp_path):
    with pytest.raises(UserError) as err:
        sl.train_sae(
            _x(), **{**TINY, **settings}, paths={"cache_dir": str(tmp_path / "cache"), "log_dir": str(tmp_path / "out")}
        )
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    assert not list(tmp_path.rglob("run.json")) and not list(tmp_path.rglob("checkpoints"))


def test_two_train_sae_calls_in_one_second_get_two_folders(tmp_path):
    """The folder is <time to the second>_<suffix>: two runs of one process differ in the suffix."""
    args = ["domain=npy", "domain.path=x.npy", f"paths.log_dir={tmp_path / 'out'}"]
    first, second = (Path(compose_train_config(args).paths.output_dir).name for _ in range(2))
    assert first.rsplit("_", 1)[1] != second.rsplit("_", 1)[1]
    paths = {"cache_dir": str(tmp_path / "cache"), "log_dir": str(tmp_path / "out")}
    a = sl.train_sae(_x(), **TINY, paths=paths)
    b = sl.train_sae(_x(), **TINY, paths=paths)
    assert a.path != b.path and a.path.parent == b.path.parent


def test_encode_takes_embeddings_of_its_width_and_refuses_others(npy_run):
    x = _x(5)
    assert np.array_equal(npy_run.encode(x), npy_run.encode_embeddings(x))
    assert np.array_equal(npy_run.encode(torch.from_numpy(x)), npy_run.encode_embeddings(x))
    assert npy_run.encode(x[0]).shape == (32,)
    with pytest.raises(UserError, match=r"^embeddings are 8 wide but this SAE reads 16"):
        npy_run.encode(_x(3, 8))
    for bad in ([1.0, 2.0], 3, {"a": 1}):
        with pytest.raises(UserError, match=r"^texts must be a string or a list of strings"):
            npy_run.encode(bad)
    half = torch.from_numpy(x).bfloat16()  # a bf16 model's output: numpy has no bfloat16 (was a TypeError)
    assert np.array_equal(npy_run.encode(half), npy_run.encode_embeddings(half.float().numpy()))


def test_nearest_texts_refuses_another_width_and_takes_any_length(npy_run):
    with pytest.raises(UserError, match=r"^the query embedding is 8 wide but the store's are 16; embed it with"):
        npy_run.nearest_texts(_x(1, 8)[0])  # was numpy's matmul ValueError
    x = _x(1)[0]
    # 1e30 x: its float32 norm overflowed, every cosine read 0 and the first rows came back
    far = npy_run.nearest_texts(x * np.float32(1e30), k=5)
    assert far["row"].tolist() == npy_run.nearest_texts(x, k=5)["row"].tolist() and (far["cos"] > 0).all()


def test_nearest_texts_says_it_takes_one_query(npy_run):
    """A list of texts was 'query must be a non-empty 2-D float array ... got <U1', and an array of
    several embeddings was answered for its first row alone, as if it were the only one."""
    one = "nearest_texts takes one text or one embedding ([d] or [1, d]), not "
    for query, says in ((["a", "b"], "a list of 2 texts; call it once per text"), (_x(3), "3 embeddings; call")):
        with pytest.raises(UserError) as err:
            npy_run.nearest_texts(query)
        assert str(err.value).startswith(one + says), err.value
    assert npy_run.nearest_texts(_x(1), k=2)["row"].tolist() == npy_run.nearest_texts(_x(1)[0], k=2)["row"].tolist()


@pytest.mark.parametrize("k", [-1, 0, 1.5, True])
def test_top_features_refuses_a_count_that_is_not_a_whole_number_from_1(npy_run, k):
    with pytest.raises(UserError, match=r"^k .*: must be 1 or more, a whole number"):
        npy_run.top_features("a text", k=k)


@pytest.mark.parametrize("i", [1.5, "1", True, np.float32(2.0)])
def test_feature_refuses_ids_that_are_not_whole_numbers(npy_run, i):
    with pytest.raises(UserError, match=r"^feature .* is not a feature id: use a whole number from 0 to 31$"):
        npy_run.feature(i)
    with pytest.raises(UserError, match=r"is not a feature id"):
        npy_run.top_texts(i)
    assert npy_run.feature(np.int64(3)).id == 3


@pytest.mark.parametrize(
    "clamp,message",
    [
        (None, r"^clamp must be a mapping \{feature id: value\}, e.g. \{123: 0.5\}; got None$"),
        ({3: "up"}, r"^clamp value 'up' is not a finite number"),
        ({3: float("nan")}, r"^clamp value nan is not a finite number"),
        ({3: 1e30}, r"^clamp value 1e\+30 is not a finite number from -1e\+06 to 1e\+06"),
        ({1.5: 0.0}, r"^feature 1.5 is not a feature id"),
    ],
)
def test_steer_refuses_a_clamp_that_is_not_ids_to_numbers(npy_run, clamp, message):
    """Found by the Hypothesis property over Run's methods: steer(text, None) was a TypeError."""
    with pytest.raises(UserError, match=message):
        npy_run.steer("a text", clamp)


def test_load_refuses_a_path_that_is_no_path_and_a_device_this_machine_lacks(npy_run):
    """Were torch's and pathlib's own errors: a TypeError, a RuntimeError, an AssertionError."""
    for bad in (None, 5):
        with pytest.raises(UserError, match=r"^a run folder is a path \(str or Path\), got "):
            sl.Run.load(bad)
    missing = ["tpu", 3.5] + ([] if torch.cuda.is_available() else ["cuda"])
    for device in missing:
        with pytest.raises(UserError, match=rf"^device={device} cannot be used here \(.+\); use device=cpu$"):
            sl.Run.load(npy_run.path, device=device)
