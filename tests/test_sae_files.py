"""The SAE folder (cfg.json, sae_weights.safetensors): a round trip for every variant, the SAELens
fields it writes (tests/test_interop.py loads it with SAELens itself), earlier layouts, load errors."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from sae_lightning.models import BatchTopKSAE, ReLUSAE, SparseAutoencoder

from .test_models import D_IN, D_SAE, USES_K, VARIANTS, WITH_THRESHOLD, batch, make, one_thread, variants  # noqa: F401

# The SAELens inference class each variant is saved as (its encode equals ours at inference).
SAELENS_ARCHITECTURE = {
    "relu": "standard",
    "topk": "topk",
    "batchtopk": "jumprelu",
    "jumprelu": "jumprelu",
    "matryoshka-topk": "topk",
    "matryoshka-batchtopk": "jumprelu",
}


@variants
def test_save_load_round_trip_in_saelens_layout(name, tmp_path):
    sae = make(name, metadata={"model_name": "all-MiniLM-L6-v2", "domain": "wiki"})
    x = batch()
    with torch.no_grad():
        for p in sae.parameters():  # away from init, so that a lost tensor would show
            p.add_(0.01 * torch.randn_like(p))
    sae(x)  # sets the BatchTopK threshold
    sae.save(tmp_path)
    sae.save_sparsity(tmp_path, torch.full((D_SAE,), -2.0))

    weights = load_file(str(tmp_path / "sae_weights.safetensors"))
    expected = {"W_enc": (D_IN, D_SAE), "b_enc": (D_SAE,), "W_dec": (D_SAE, D_IN), "b_dec": (D_IN,)}
    if name in WITH_THRESHOLD:
        expected["threshold"] = (D_SAE,)
    assert {key: tuple(t.shape) for key, t in weights.items()} == expected
    assert load_file(str(tmp_path / "sparsity.safetensors"))["sparsity"].shape == (D_SAE,)

    cfg = json.loads((tmp_path / "cfg.json").read_text())
    assert cfg["architecture"] == SAELENS_ARCHITECTURE[name]  # what SAELens builds (tests/test_interop.py)
    assert (cfg["d_in"], cfg["d_sae"], cfg["dtype"]) == (D_IN, D_SAE, "float32")
    assert cfg["apply_b_dec_to_input"] is True and cfg["normalize_activations"] == "none"
    assert cfg["metadata"] == {"model_name": "all-MiniLM-L6-v2", "domain": "wiki", "sae_lens_version": "6.0.0"}
    assert ("k" in cfg) == (cfg["architecture"] == "topk")
    own = cfg["sae_lightning"]
    assert own["architecture"] == VARIANTS[name][0] and (own["d_in"], own["d_sae"]) == (D_IN, D_SAE)
    assert ("k" in own) == (name in USES_K)

    loaded = SparseAutoencoder.load(tmp_path)
    assert type(loaded) is type(sae)
    assert loaded.saelens_cfg() == sae.saelens_cfg()
    for key, t in loaded.saelens_tensors().items():
        if name == "jumprelu" and key == "threshold":
            # learnt as log(theta): exp(log(theta)) may come back one float32 ulp away
            torch.testing.assert_close(t, sae.threshold, rtol=2e-7, atol=0)
        else:
            assert torch.equal(t, sae.saelens_tensors()[key]), key
    sae.eval(), loaded.eval()
    with torch.no_grad():
        assert torch.equal(loaded(x).x_hat, sae(x).x_hat)
        assert torch.equal(loaded.encode(x), sae.encode(x))


def test_folders_in_the_earlier_flat_layout_still_load(tmp_path):
    """Runs saved before cfg.json had its sae_lightning block kept our fields at the top level."""
    sae = make("batchtopk", metadata={"model_name": "m"})
    sae(batch())
    sae.save(tmp_path)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    flat = {**cfg.pop("sae_lightning"), "metadata": {"model_name": "m"}}
    (tmp_path / "cfg.json").write_text(json.dumps(flat))
    loaded = SparseAutoencoder.load(tmp_path)
    assert type(loaded) is BatchTopKSAE and loaded.cfg.metadata == {"model_name": "m"}
    assert torch.equal(loaded.threshold, sae.threshold)


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="cfg.json"):
        SparseAutoencoder.load(tmp_path / "nowhere")

    make("topk").save(tmp_path)
    cfg_path = tmp_path / "cfg.json"
    cfg = json.loads(cfg_path.read_text())

    cfg_path.write_text(json.dumps({**cfg, "sae_lightning": {**cfg["sae_lightning"], "architecture": "gated"}}))
    with pytest.raises(ValueError, match="cfg.json: unknown architecture 'gated'; known archit"):
        SparseAutoencoder.load(tmp_path)

    cfg_path.write_text("{not json")
    with pytest.raises(ValueError, match="cfg.json is corrupt"):
        SparseAutoencoder.load(tmp_path)

    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="holds a 'topk' SAE, not ReLUSAE"):
        ReLUSAE.load(tmp_path)

    (tmp_path / "sae_weights.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="sae_weights.safetensors: corrupt"):
        SparseAutoencoder.load(tmp_path)

    (tmp_path / "sae_weights.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="sae_weights.safetensors"):
        SparseAutoencoder.load(tmp_path)


def test_loading_does_not_move_the_callers_rng(tmp_path):
    make("relu").save(tmp_path)
    torch.manual_seed(1)
    SparseAutoencoder.load(tmp_path)
    after_load = torch.rand(3)
    torch.manual_seed(1)
    assert torch.equal(torch.rand(3), after_load)
