"""The lean query encoder (sae_lightning/data/lean_encoder.py) against sentence-transformers itself,
on the packaged default model: the same vectors for the texts a user types, long or odd ones, and
batches of mixed lengths; other model shapes go to sentence-transformers; sae-search on the
default model never imports transformers."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest

from sae_lightning.data import lean_encoder
from sae_lightning.data.embed import load_model, resolve_model
from sae_lightning.errors import UserError
from sae_lightning.search import open_run

DENSE = "sentence_transformers.models.Dense"

TEXTS = [
    "prime numbers and divisibility",
    "the fall of the Roman empire",
    "",
    "Ünïcödé café naïve 東京 — “quotes” 🙂",
    "x" * 3000,  # one word of thousands of characters: many word-pieces, truncated
    "The quick brown fox jumps over the lazy dog. " * 80,  # past max_seq_length (256 tokens)
    "a",
]


@pytest.fixture(scope="module")
def default_folder():
    return resolve_model("default")


def test_same_vectors_as_sentence_transformers(default_folder):
    lean = lean_encoder.load(default_folder)
    assert lean is not None  # the default model has the shape the module computes
    model = load_model("default")
    for normalize in (False, True):
        got = lean.encode(TEXTS, convert_to_numpy=True, normalize_embeddings=normalize)
        want = model.encode(TEXTS, convert_to_numpy=True, normalize_embeddings=normalize, show_progress_bar=False)
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=2e-6)
    one = lean.encode(TEXTS[:1])  # alone, no padding: the same as in the mixed batch
    np.testing.assert_allclose(one[0], lean.encode(TEXTS)[0], atol=1e-6)


def test_other_shapes_go_to_sentence_transformers(default_folder, tmp_path):
    """A folder this module would compute differently is left to sentence-transformers."""
    changes = {
        "modules.json": lambda m: [*m[:2], {"idx": 3, "name": "3", "path": "3_Dense", "type": DENSE}],
        "1_Pooling/config.json": lambda p: {**p, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False},
        "config.json": lambda c: {**c, "model_type": "mpnet"},
        "config_sentence_transformers.json": lambda c: {**c, "prompts": {"query": "query: "}},
    }
    for name, change in changes.items():
        folder = tmp_path / name.replace("/", "_")
        shutil.copytree(default_folder, folder, ignore=shutil.ignore_patterns("*.safetensors"))
        (folder / "model.safetensors").symlink_to(f"{default_folder}/model.safetensors")
        assert lean_encoder.load(str(folder)) is not None  # the copy as it is: computed
        path = folder / name
        path.write_text(json.dumps(change(json.loads(path.read_text()))))
        lean_encoder.load.cache_clear()
        assert lean_encoder.load(str(folder)) is None, name
    assert lean_encoder.load(str(tmp_path / "not-there")) is None


def test_search_run_uses_it_for_the_default_model(wiki_topk_run):
    assert isinstance(open_run(wiki_topk_run).query_encoder, lean_encoder.LeanEncoder)


def test_a_store_whose_model_is_gone_names_its_manifest(wiki_topk_run, tmp_path):
    """A store embedded with a local model folder since deleted: search says which file names it."""
    run = open_run(wiki_topk_run)
    run.store = copy.copy(run.store)
    run.store.manifest = {**run.store.manifest, "model_name": str(tmp_path / "deleted-model")}
    with pytest.raises(UserError, match=r"model_name in .*manifest\.json=.*deleted-model is not a sentence-trans"):
        run.query_encoder


def test_unreadable_weights_go_to_sentence_transformers(default_folder, tmp_path):
    """A damaged folder of the right shape is not computed here: sentence-transformers' load then
    names the problem (search's one-line error), not a traceback from this module."""
    folder = tmp_path / "damaged"
    shutil.copytree(default_folder, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    assert lean_encoder.load(str(folder)) is None
