"""Every hand-written backward against dense autograd, in float64: TopK's sparse encoder and decoder
gradients (`GatherActive`, `SparseDecode`) and the CSR products under them (`ActivePattern`), for
each TopK-family variant and loss (AuxK and Matryoshka's prefixes included), and JumpReLU's
straight-through pieces (`_JumpReLU`, `_Step`)."""

from __future__ import annotations

import pytest
import torch

from sae_lightning.models import SAEOutput, build_sae, fvu, sae_config
from sae_lightning.models.jumprelu import _JumpReLU, _Step
from sae_lightning.models.kernels.active import ActivePattern, SparseDecode

D_IN, D_SAE, K, B = 12, 48, 4, 20
PARAMS = ("W_enc", "b_enc", "W_dec", "b_dec")


def make(architecture: str, **extra):
    torch.manual_seed(0)
    sae = build_sae(sae_config(architecture=architecture, d_in=D_IN, d_sae=D_SAE, k=K, aux_k=6, **extra)).double()
    with torch.no_grad():  # away from the init's symmetry: every parameter gets its own gradient
        for p in sae.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return sae


def rows_of(out: SAEOutput) -> torch.Tensor:
    counts = torch.diff(out.offsets, append=out.offsets.new_tensor([out.idx.numel()]))
    return torch.repeat_interleave(torch.arange(out.offsets.numel()), counts)


def dense_loss(sae, x: torch.Tensor, out: SAEOutput, dead: torch.Tensor) -> torch.Tensor:
    """The variant's loss written with plain autograd ops on dense [B, d_sae] latents, at the
    entries the sparse path selected (selection has no gradient)."""
    pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    mask = torch.zeros(B, D_SAE, dtype=torch.bool)
    mask[rows_of(out), out.idx] = True
    z = pre.relu() * mask
    x_hat = z @ sae.W_dec + sae.b_dec
    if sae.cfg.architecture == "matryoshka":
        main = torch.stack([fvu(z[:, :m] @ sae.W_dec[:m] + sae.b_dec, x) for m in sae.cfg.matryoshka_prefixes]).mean()
    else:
        main = fvu(x_hat, x)
    # AuxK has no custom backward: the dense branch of auxk_loss (pre with a graph) is plain autograd.
    return main + sae.cfg.aux_coefficient * sae.auxk_loss(x, SAEOutput(x_hat=x_hat, pre=pre), dead)


def grads(sae, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    sae.zero_grad(set_to_none=True)
    loss.backward()
    return {name: getattr(sae, name).grad.clone() for name in PARAMS}


@pytest.mark.parametrize(
    "architecture, extra",
    [
        ("topk", {}),
        ("topk", {"select_dtype": "bfloat16"}),
        ("batchtopk", {}),
        ("matryoshka", {"matryoshka_base": "topk", "matryoshka_prefixes": [6, 24, 48]}),
        ("matryoshka", {"matryoshka_prefixes": [6, 24, 48]}),
    ],
    ids=["topk", "topk-bf16-select", "batchtopk", "matryoshka-topk", "matryoshka-batchtopk"],
)
def test_sparse_training_gradients_equal_dense_autograd(architecture, extra):
    sae = make(architecture, **extra)
    x = torch.randn(B, D_IN, dtype=torch.float64)
    dead = torch.zeros(D_SAE, dtype=torch.bool)
    dead[::5] = True  # AuxK on, over a slice of the dictionary that includes active latents
    out = sae(x)  # x needs no gradient: the sparse path with the hand-written backward passes
    assert out.pre.grad_fn is None and out.vals.grad_fn is not None
    sparse = grads(sae, sae.loss_terms(x, out, dead_mask=dead)["loss"])
    dense = grads(sae, dense_loss(sae, x, out, dead))
    for name in PARAMS:
        assert dense[name].abs().sum() > 0, name  # each parameter's gradient is really compared
        torch.testing.assert_close(sparse[name], dense[name], rtol=1e-9, atol=1e-12, msg=name)


def test_sparse_decode_backward_passes_gradcheck():
    torch.manual_seed(1)
    idx = torch.randint(0, D_SAE, (B * K,))
    offsets = torch.arange(0, B * K, K)
    pattern = ActivePattern(idx, offsets, D_SAE)
    vals = torch.randn(B * K, dtype=torch.float64, requires_grad=True)
    W_dec = torch.randn(D_SAE, D_IN, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v, w: SparseDecode.apply(v, w, pattern), (vals, W_dec))


def test_sparse_decode_runs_in_float32_under_bf16_autocast():
    """Lightning's bf16-mixed on a CPU hands bfloat16 values in; torch has no bf16 CSR matmul there,
    so the sparse decoder casts them to float32 and runs forwards and backwards with autocast off:
    the same output and weight gradient as float32 on the same (bf16-rounded) values."""
    torch.manual_seed(1)
    pattern = ActivePattern(torch.randint(0, D_SAE, (B * K,)), torch.arange(0, B * K, K), D_SAE)
    vals = torch.randn(B * K).bfloat16().requires_grad_()
    W_dec = torch.randn(D_SAE, D_IN, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = SparseDecode.apply(vals, W_dec, pattern)
    out.square().sum().backward()
    vals32, W32 = vals.detach().float().requires_grad_(), W_dec.detach().clone().requires_grad_()
    out32 = SparseDecode.apply(vals32, W32, pattern)
    out32.square().sum().backward()
    assert out.dtype == torch.float32 and W_dec.grad.dtype == torch.float32
    torch.testing.assert_close(out, out32, rtol=0, atol=0)
    torch.testing.assert_close(W_dec.grad, W32.grad, rtol=0, atol=0)
    torch.testing.assert_close(vals.grad, vals32.grad.bfloat16(), rtol=0, atol=0)


def test_active_pattern_products_equal_the_dense_ones():
    """sampled: (a bᵀ) at the active entries; t_matmul: Sᵀ @ dense; uneven rows and repeated latents."""
    torch.manual_seed(2)
    offsets = torch.tensor([0, 3, 3, 7, 9])  # row 1 holds no entry
    idx = torch.tensor([5, 1, 40, 1, 2, 3, 47, 5, 0, 1, 9])
    rows = torch.repeat_interleave(torch.arange(5), torch.diff(offsets, append=torch.tensor([11])))
    pattern = ActivePattern(idx, offsets, D_SAE)
    a, b = torch.randn(5, 7, dtype=torch.float64), torch.randn(D_SAE, 7, dtype=torch.float64)
    torch.testing.assert_close(pattern.sampled(a, b), (a @ b.T)[rows, idx])
    values, dense = torch.randn(11, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    S = torch.zeros(5, D_SAE, dtype=torch.float64).index_put((rows, idx), values, accumulate=True)
    torch.testing.assert_close(pattern.t_matmul(values, dense), S.T @ dense)


def straight_through(pre: torch.Tensor, theta: torch.Tensor, bandwidth: float, scale: bool) -> torch.Tensor:
    """Dense autograd form of the pseudo-derivative: H(pre - θ)·(pre or 1) forwards, and
    d/dθ = -(θ or 1)/ε · rect((pre - θ)/ε) backwards (Rajamanoharan et al. 2024, eq. 11-12)."""
    gate = (pre > theta).to(pre.dtype)
    rect = (((pre - theta) / bandwidth).abs() < 0.5).to(pre.dtype).detach()
    slope = -(theta.detach() if scale else 1.0) / bandwidth * rect
    surrogate = slope * theta
    return (pre * gate if scale else gate.detach()) + surrogate - surrogate.detach()


@pytest.mark.parametrize("function, scale", [(_JumpReLU, True), (_Step, False)], ids=["jumprelu", "step"])
def test_jumprelu_straight_through_backward_equals_dense_autograd(function, scale):
    torch.manual_seed(3)
    bandwidth = 0.05
    theta = (0.2 + 0.1 * torch.rand(D_SAE, dtype=torch.float64)).requires_grad_()
    pre = (theta.detach() + 0.1 * torch.randn(B, D_SAE, dtype=torch.float64)).requires_grad_()
    weights = torch.randn(B, D_SAE, dtype=torch.float64)
    (function.apply(pre, theta, bandwidth) * weights).sum().backward()
    custom = (pre.grad, theta.grad)
    pre.grad = theta.grad = None
    (straight_through(pre, theta, bandwidth, scale) * weights).sum().backward()
    torch.testing.assert_close(theta.grad, custom[1])
    assert theta.grad.abs().sum() > 0
    if scale:  # d/dpre of pre·H(pre - θ) is the true one, H: gradcheck it where no pre sits at θ
        torch.testing.assert_close(pre.grad, custom[0])
        assert torch.autograd.gradcheck(
            lambda p: _JumpReLU.apply(p, theta.detach(), bandwidth), (pre.detach()[:3].requires_grad_(),)
        )
    else:
        assert custom[0] is None  # the L0 count sends no gradient to the pre-activations


@pytest.mark.parametrize(
    "function, expected", [(_JumpReLU, lambda t: -t), (_Step, lambda t: -1.0)], ids=["jumprelu", "step"]
)
def test_straight_through_threshold_gradient_is_unbiased(function, expected):
    """For pre ~ U(0, 1): E[pre·H(pre - θ)] = (1 - θ²)/2 and E[H(pre - θ)] = 1 - θ, so their exact
    θ-derivatives are -θ and -1; the pseudo-derivative's mean over many samples must match them."""
    theta = torch.full((1,), 0.3, dtype=torch.float64, requires_grad=True)
    pre = torch.rand(400_000, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    function.apply(pre, theta, 0.02).mean().backward()
    assert float(theta.grad) == pytest.approx(expected(0.3), rel=0.03)
