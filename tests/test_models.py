"""The pure-torch SAEs: shapes, losses, decoder geometry, SAELens files, config errors, and that
TopK and ReLU SAEs recover a known dictionary."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
import torch.nn.functional as F

from sae_lightning.models import (
    ARCHITECTURES,
    BatchTopKSAE,
    JumpReLUSAE,
    MatryoshkaBatchTopKSAE,
    MatryoshkaSAE,
    ReLUSAE,
    SparseAutoencoder,
    TopKSAE,
    build_sae,
    fvu,
    geometric_median,
    sae_config,
    sparse_dictionary_data,
)

D_IN, D_SAE, K, B = 16, 64, 4, 32

MATRYOSHKA_TERMS = {"loss", "prefix_fvu", "fvu", "auxk"}
# (architecture, extra cfg, expected class, expected loss-term names)
VARIANTS = {
    "relu": ("relu", {}, ReLUSAE, {"loss", "mse", "l1"}),
    "topk": ("topk", {}, TopKSAE, {"loss", "fvu", "auxk"}),
    "batchtopk": ("batchtopk", {}, BatchTopKSAE, {"loss", "fvu", "auxk"}),
    "jumprelu": ("jumprelu", {}, JumpReLUSAE, {"loss", "mse", "l0"}),
    "matryoshka-topk": ("matryoshka", {"matryoshka_base": "topk"}, MatryoshkaSAE, MATRYOSHKA_TERMS),
    "matryoshka-batchtopk": ("matryoshka", {}, MatryoshkaBatchTopKSAE, MATRYOSHKA_TERMS),
}
WITH_THRESHOLD = {"batchtopk", "jumprelu", "matryoshka-batchtopk"}
USES_K = {"topk", "batchtopk", "matryoshka-topk", "matryoshka-batchtopk"}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # These tensors are tiny: threads only add contention when other test processes share the CPU.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make(name: str, seed: int = 0, **overrides) -> SparseAutoencoder:
    architecture, extra, _, _ = VARIANTS[name]
    torch.manual_seed(seed)
    knobs = {"k": K, "l1_warmup_steps": 0, **extra, **overrides}
    own = ARCHITECTURES[architecture].config_class.field_names()  # each variant takes only its own settings
    cfg = sae_config(architecture, D_IN, D_SAE, **{key: v for key, v in knobs.items() if key in own})
    return build_sae(cfg)


def batch(n: int = B, seed: int = 0) -> torch.Tensor:
    return sparse_dictionary_data(n, D_IN, 32, 3, seed=seed)[0]


variants = pytest.mark.parametrize("name", list(VARIANTS))


# ---- every variant ---------------------------------------------------------------------------


@variants
def test_build_sae_returns_the_variant_class(name):
    assert type(make(name)) is VARIANTS[name][2]
    assert isinstance(make(name), SparseAutoencoder)


@variants
def test_forward_shapes_and_encode_decode_agree(name):
    sae = make(name)
    x = batch()
    sae.train()
    sae(x)  # one training batch, so that BatchTopK has a threshold
    sae.eval()
    out = sae(x)
    assert out.x_hat.shape == (B, D_IN)
    assert out.pre.shape == out.z.shape == (B, D_SAE)
    z = sae.encode(x)
    torch.testing.assert_close(z, out.z)
    torch.testing.assert_close(sae.decode(z), out.x_hat, atol=1e-5, rtol=1e-5)
    assert torch.equal(out.fire_counts, (out.z > 0).sum(0))
    torch.testing.assert_close(out.l0, (out.z > 0).sum(-1).float().mean())
    # validation's pass: the same latents, x̂ decoded from the active ones alone, no graph
    seen = sae.reconstruct(x.requires_grad_())
    torch.testing.assert_close(seen.z, z)
    torch.testing.assert_close(seen.x_hat, sae.decode(z), atol=1e-5, rtol=1e-5)
    assert torch.equal(seen.fire_counts, (z > 0).sum(0)) and not seen.x_hat.requires_grad


@variants
def test_loss_terms_are_finite_and_differentiable(name):
    sae = make(name)
    x = batch()
    out = sae(x)
    dead = torch.zeros(D_SAE, dtype=torch.bool)
    dead[::3] = True
    terms = sae.loss_terms(x, out, step=10, dead_mask=dead)
    assert set(terms) == VARIANTS[name][3]
    assert all(t.ndim == 0 and torch.isfinite(t) for t in terms.values())
    assert terms["loss"].requires_grad
    terms["loss"].backward()
    assert sae.W_enc.grad.abs().sum() > 0 and sae.W_dec.grad.abs().sum() > 0


@variants
def test_a_few_adam_steps_lower_the_loss(name):
    sae = make(name)
    x = batch(256)
    sae.init_b_dec(x)
    opt = torch.optim.Adam(sae.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        terms = sae.loss_terms(x, sae(x), step=1000)
        opt.zero_grad()
        terms["loss"].backward()
        sae.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        sae.set_decoder_norm_to_unit_norm()
        losses.append(terms["loss"].item())
    assert losses[-1] < 0.8 * losses[0]


@variants
def test_copy_and_pickle_keep_the_class(name):
    sae = make(name)
    assert type(copy.deepcopy(sae)) is type(sae)
    assert type(pickle.loads(pickle.dumps(sae))) is type(sae)


def test_half_precision_inputs_are_computed_in_float32():
    sae = make("topk")
    out = sae(batch().half())
    assert out.x_hat.dtype == torch.float32
    assert torch.isfinite(sae.loss_terms(batch().half(), out)["loss"])


# ---- decoder geometry and init ------------------------------------------------------------


def test_decoder_gradient_projection_and_renormalisation():
    sae = make("relu")
    x = batch()
    sae.loss_terms(x, sae(x))["loss"].backward()
    with torch.no_grad():
        sae.W_dec.mul_(torch.rand(D_SAE, 1) + 0.5)  # rows off unit norm, as after an Adam step
    sae.remove_gradient_parallel_to_decoder_directions()
    cosine = F.cosine_similarity(sae.W_dec.grad, sae.W_dec, dim=1)
    assert cosine.abs().max() < 1e-5
    sae.set_decoder_norm_to_unit_norm()
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(D_SAE))


def test_init_ties_encoder_to_unit_norm_decoder():
    sae = make("topk")
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(D_SAE))
    assert torch.equal(sae.W_enc, sae.W_dec.T)
    assert not sae.b_enc.any() and not sae.b_dec.any()


def test_geometric_median_ignores_an_outlier_the_mean_follows():
    torch.manual_seed(0)
    points = torch.randn(200, D_IN) * 0.1 + 1.0
    points[0] = 1000.0
    assert (geometric_median(points) - 1.0).abs().max() < 0.1
    assert (points.mean(0) - 1.0).abs().max() > 1.0

    sae = make("relu")
    sae.init_b_dec(points)
    assert (sae.b_dec - 1.0).abs().max() < 0.1
    sae.init_b_dec(points, method="mean")
    torch.testing.assert_close(sae.b_dec.detach(), points.mean(0))
    with pytest.raises(ValueError, match="geometric_median"):
        sae.init_b_dec(points, method="median")


# ---- TopK family ------------------------------------------------------------------------------


def test_topk_has_at_most_k_latents_and_decodes_sparsely():
    sae = make("topk")
    with torch.no_grad():
        sae.b_enc[2:] = -100.0  # at most 2 positive pre-activations: ReLU must drop the rest
    x = batch()
    out = sae(x)
    per_row = (out.z != 0).sum(-1)
    assert per_row.max() <= 2
    assert out.idx.shape == (B * K,)  # the sparse form holds k entries per row, no more
    dense = out.z @ sae.W_dec + sae.b_dec
    torch.testing.assert_close(out.x_hat, dense, atol=1e-5, rtol=0)


def test_topk_decoder_gradient_touches_only_active_rows():
    sae = make("topk")
    x = batch(4)
    out = sae(x)
    out.x_hat.sum().backward()
    active = torch.zeros(D_SAE, dtype=torch.bool)
    active[out.idx] = True
    assert not sae.W_dec.grad[~active].any()


def test_topk_select_matches_torch_topk_with_gradients():
    """TopKSAE.select through the kernel: the same latents and values as torch.topk, and the values
    keep their graph (the dense path used for an input gradient)."""
    sae = make("topk")
    pre = sae.encode_pre(batch(64).requires_grad_())
    idx, vals, offsets = sae.select(pre)
    ref_vals, ref_idx = pre.topk(K, dim=1)
    assert torch.equal(idx.view(64, K).sort(1).values, ref_idx.sort(1).values)
    torch.testing.assert_close(vals.view(64, K).sort(1).values, ref_vals.relu().sort(1).values)
    vals.sum().backward()
    assert sae.W_enc.grad is not None and sae.W_enc.grad.abs().sum() > 0


def test_bf16_selection_keeps_float32_activations():
    """select_dtype=bfloat16 lets bf16 pick the k latents; their values and the reconstruction are
    the float32 ones at those picks, and the picks differ from float32's at near-ties only."""
    exact, fast = make("topk", select_dtype="float32"), make("topk", select_dtype="bfloat16")
    x = batch(256)
    out32, out16 = exact(x), fast(x)
    with torch.no_grad():
        pre = exact.encode_pre(x)
    rows = torch.arange(256).repeat_interleave(K)
    torch.testing.assert_close(out16.vals.detach(), pre[rows, out16.idx].relu(), atol=1e-6, rtol=0)
    dense = out16.z @ exact.W_dec + exact.b_dec
    torch.testing.assert_close(out16.x_hat.detach(), dense.detach(), atol=1e-5, rtol=0)
    picked32 = torch.zeros_like(pre, dtype=torch.bool).scatter_(1, out32.idx.view(256, K), True)
    agree = picked32.gather(1, out16.idx.view(256, K)).float().mean()
    assert agree > 0.95
    kth = pre.topk(K, dim=1).values[:, -1:]  # a bf16 pick is never far below float32's k-th value
    assert (pre.gather(1, out16.idx.view(256, K)) >= kth - 0.02 * kth.abs().clamp_min(1)).all()
    out16.x_hat.pow(2).sum().backward()
    assert fast.W_enc.grad is not None and torch.isfinite(fast.W_enc.grad).all()


def test_batchtopk_always_selects_in_float32():
    sae = make("batchtopk", select_dtype="bfloat16")
    x = batch()
    assert sae._select_no_grad(x)[0].dtype == torch.float32


def test_auxk_is_zero_without_dead_latents_and_positive_with_some():
    sae = make("topk")
    x = batch()
    out = sae(x)
    assert sae.loss_terms(x, out)["auxk"] == 0
    none_dead = torch.zeros(D_SAE, dtype=torch.bool)
    assert sae.loss_terms(x, out, dead_mask=none_dead)["auxk"] == 0

    dead = none_dead.clone()
    dead[D_SAE // 2 :] = True
    auxk = sae.loss_terms(x, out, dead_mask=dead)["auxk"]
    assert auxk > 0
    auxk.backward()
    # AuxK trains the dead latents' encoder columns and nothing of the live ones
    assert sae.W_enc.grad[:, dead].abs().sum() > 0
    assert not sae.W_enc.grad[:, ~dead].any()


def test_auxk_gradient_keeps_the_encoder_layout():
    """The main path's and AuxK's W_enc gradients arrive in one layout, W_enc's own (column-major),
    so accumulating them is a plain add: mixed layouts cost a strided copy per step."""
    sae = make("topk")
    x = batch()
    dead = torch.zeros(D_SAE, dtype=torch.bool)
    dead[::3] = True
    out = sae(x)
    main = torch.autograd.grad(sae.loss_terms(x, out)["loss"], sae.W_enc, retain_graph=True)[0]
    aux = torch.autograd.grad(sae.auxk_loss(x, out, dead), sae.W_enc)[0]
    assert main.stride() == aux.stride() == sae.W_enc.stride() == (1, D_IN)


def test_auxk_is_finite_when_the_residual_is_zero():
    sae = make("topk")
    x = batch()
    out = sae(x)
    dead = torch.ones(D_SAE, dtype=torch.bool)
    terms = sae.loss_terms(out.x_hat.detach(), out, dead_mask=dead)
    assert terms["auxk"] == 0
    terms["loss"].backward()
    assert torch.isfinite(sae.W_enc.grad).all()


def test_batchtopk_keeps_k_times_batch_in_training_and_a_threshold_in_eval():
    sae = make("batchtopk")
    x = batch()
    assert not sae.threshold.any()
    out = sae(x)
    assert (out.z > 0).sum() == K * B
    assert (out.z > 0).sum(-1).unique().numel() > 1  # the budget is shared, not k per row
    smallest_kept = out.z[out.z > 0].min()
    torch.testing.assert_close(sae.threshold, smallest_kept.expand(D_SAE))

    second = sae(batch(seed=1))
    assert sae.threshold.unique().numel() == 1  # one value broadcast to every latent
    # bias-corrected EMA: after two batches the weights are decay : 1 over their minima, normalised
    decay = sae.cfg.threshold_decay
    expected = (decay * smallest_kept + second.vals[second.vals > 0].min()) / (1 + decay)
    torch.testing.assert_close(sae.threshold, expected.expand(D_SAE))

    sae.eval()
    before = sae.threshold.clone()
    z = sae(x).z
    pre = sae.encode_pre(x)
    torch.testing.assert_close(z, pre.relu() * (pre > sae.threshold))
    assert torch.equal(sae.threshold, before)  # eval never moves it


def test_matryoshka_prefixes_default_and_nest():
    sae = make("matryoshka-topk")
    assert sae.cfg.matryoshka_prefixes == [4, 8, 16, 32, 64]
    x = batch()
    out = sae(x)
    terms = sae.loss_terms(x, out)
    prefix = torch.arange(D_SAE)
    expected = [fvu(sae.decode(out.z * (prefix < m)), x) for m in sae.cfg.matryoshka_prefixes]
    torch.testing.assert_close(terms["prefix_fvu"], torch.stack(expected).mean())
    torch.testing.assert_close(terms["fvu"], expected[-1])

    single = make("matryoshka-topk", matryoshka_prefixes=[D_SAE])
    terms = single.loss_terms(x, single(x))
    torch.testing.assert_close(terms["prefix_fvu"], terms["fvu"])


def test_jumprelu_gates_at_the_threshold_and_trains_it():
    sae = make("jumprelu")
    x = batch()
    out = sae(x)
    theta = sae.threshold.detach()
    torch.testing.assert_close(out.z, out.pre * (out.pre > theta))
    sae.loss_terms(x, out)["l0"].backward()
    assert sae.log_threshold.grad.abs().sum() > 0  # straight-through estimate reaches theta
    assert (sae.log_threshold.grad <= 0).all()  # raising theta can only lower L0


# ---- config and file errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        # the command line's messages: the same rules (schemas/sae.py) check a config built in Python
        ({"architecture": "topk", "d_sae": 64, "k": 64}, "sae.k=64 must be below sae.d_sae=64"),
        ({"architecture": "topk", "d_sae": 64, "k": 0}, "sae.k=0 is invalid; set sae.k to a whole number >= 1"),
        ({"architecture": "batchtopk", "d_sae": 64, "k": None}, "sae.k=null is invalid"),
        ({"architecture": "relu", "d_sae": 0}, "sae.d_sae=0 is invalid; set sae.d_sae to a whole number >= 1"),
        (
            {"architecture": "topk", "d_sae": 64, "k": 4, "select_dtype": "fp8"},
            "sae.select_dtype=fp8 is invalid; set sae.select_dtype to one of float32 | bfloat16",
        ),
        (
            {"architecture": "gated", "d_sae": 64},
            "unknown architecture 'gated'; known architectures: batchtopk, jumprelu, matryoshka, relu, topk",
        ),
        (
            {"architecture": "matryoshka", "d_sae": 64, "k": 4, "matryoshka_prefixes": [32, 16, 64]},
            "set sae.matryoshka_prefixes to an increasing list",
        ),
        (
            {"architecture": "matryoshka", "d_sae": 64, "k": 4, "matryoshka_prefixes": [16, 32]},
            "must end at sae.d_sae=64",
        ),
        (
            {"architecture": "matryoshka", "d_sae": 64, "k": 4, "matryoshka_base": "relu"},
            "sae.matryoshka_base=relu is invalid",
        ),
        ({"architecture": "jumprelu", "d_sae": 64, "bandwidth": 0.0}, "sae.bandwidth=0.0 is invalid"),
        ({"architecture": "relu", "d_sae": 64, "dtype": "int8"}, "dtype='int8'"),
    ],
)
def test_config_errors_name_the_problem(kwargs, message):
    with pytest.raises(ValueError) as err:
        sae_config(d_in=D_IN, **kwargs)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_architectures_registry_is_complete():
    assert set(ARCHITECTURES) == {"relu", "topk", "batchtopk", "jumprelu", "matryoshka"}
