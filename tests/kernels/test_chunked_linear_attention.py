"""chunked_linear_attention: block-tiled (causal) linear attention vs the naive formula."""

import sys

import pytest
import torch

from helpers.triton_compile import check_compiles
from tessera.kernels import chunked_linear_attention
from tessera.kernels._chunked_linear_attention_triton import BLOCK_N
from tessera.kernels.chunked_linear_attention import (
    CHUNKED_LINEAR_ATTENTION,
    TORCH_BLOCK,
    chunked_linear_attention_torch,
)


def naive(q, k, v, causal):
    """out_i = q_i (sum_{j in J(i)} k_j^T v_j) / N, the causal prefix via cumulative sums."""
    n = q.shape[2]
    outer = k[..., :, None] * v[..., None, :]  # (B, H, N, D, Dv)
    states = outer.cumsum(2) if causal else outer.sum(2, keepdim=True).expand_as(outer)
    return torch.einsum("bhnd,bhnde->bhne", q, states) / n


def _qkv(n, b=2, h=2, d=6, dv=5, dtype=torch.float64):
    return tuple(torch.randn(b, h, n, size, dtype=dtype) for size in (d, d, dv))


# N below one block, not a multiple of the block, and exactly two blocks of the torch path.
@pytest.mark.parametrize("n", [1, 7, TORCH_BLOCK + 45, 2 * TORCH_BLOCK])
@pytest.mark.parametrize("causal", [True, False])
def test_matches_naive_formula(n, causal):
    q, k, v = _qkv(n)
    out = chunked_linear_attention(q, k, v, causal=causal)
    torch.testing.assert_close(out, naive(q, k, v, causal))


def test_causal_output_ignores_the_future():
    q, k, v = _qkv(300)
    out = chunked_linear_attention(q, k, v, causal=True)
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 200:] = torch.randn_like(k2[:, :, 200:])
    v2[:, :, 200:] = torch.randn_like(v2[:, :, 200:])
    out2 = chunked_linear_attention(q, k2, v2, causal=True)
    torch.testing.assert_close(out2[:, :, :200], out[:, :, :200])


@pytest.mark.parametrize("causal", [True, False])
def test_float64_gradcheck(causal, monkeypatch):
    # Blocks of 4 so that a tiny N = 10 spans three blocks, the last one partial.
    # (the package attribute of the same name is the function, hence sys.modules)
    module = sys.modules["tessera.kernels.chunked_linear_attention"]
    monkeypatch.setattr(module, "TORCH_BLOCK", 4)
    inputs = tuple(t.requires_grad_() for t in _qkv(10, b=1, h=1, d=2, dv=3))
    assert torch.autograd.gradcheck(
        lambda q, k, v: chunked_linear_attention(q, k, v, causal=causal), inputs
    )


@pytest.mark.parametrize(
    "shapes, match",
    [
        (((2, 3, 4), (2, 3, 4), (2, 3, 4)), "q must be"),
        (((1, 2, 3, 4), (1, 2, 3, 5), (1, 2, 3, 4)), "k must match"),
        (((1, 2, 3, 4), (1, 2, 3, 4), (1, 2, 2, 4)), "v must be"),
    ],
)
def test_inconsistent_shapes_raise_value_error(shapes, match):
    q, k, v = (torch.randn(s) for s in shapes)
    with pytest.raises(ValueError, match=match):
        chunked_linear_attention(q, k, v, causal=True)


@pytest.mark.kernels
@pytest.mark.parametrize("causal", [True, False])
def test_triton_forward_and_backward_match_naive(triton_backend, causal):
    # N not a multiple of the kernel block; D not a power of two; Dv over two value blocks.
    q, k, v = _qkv(BLOCK_N + 17, b=1, d=12, dv=70, dtype=torch.float32)
    assert CHUNKED_LINEAR_ATTENTION.select(q, k, v, causal=causal)[0] == "triton"
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    ref_leaves = [t.double().requires_grad_() for t in (q, k, v)]
    out = chunked_linear_attention(*leaves, causal=causal)
    ref = naive(*ref_leaves, causal)
    torch.testing.assert_close(out, ref.float(), rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(out)
    grads = torch.autograd.grad(out, leaves, grad)
    for g, r in zip(grads, torch.autograd.grad(ref, ref_leaves, grad.double()), strict=True):
        torch.testing.assert_close(g, r.float(), rtol=1e-4, atol=1e-5)


@pytest.mark.kernels
def test_triton_op_registration_passes_opcheck():
    q, k, v = (t.requires_grad_() for t in _qkv(20, b=1, h=1, d=4, dv=3, dtype=torch.float32))
    torch.library.opcheck(
        torch.ops.tessera.chunked_linear_attention_fwd.default,
        (q, k, v, True),
        test_utils=("test_schema", "test_faketensor", "test_autograd_registration"),
    )


@pytest.mark.kernels
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("kernel", ["fwd", "bwd"])
def test_triton_kernels_compile_for_sm80_and_sm90(kernel, causal):
    if kernel == "fwd":
        io = {"Q": "*fp16", "K": "*fp16", "V": "*fp16", "Out": "*fp16"}
    else:
        io = {"Q": "*fp16", "K": "*fp16", "V": "*fp16", "DO": "*fp16"}
        io |= {"DQ": "*fp32", "DK": "*fp32", "DV_OUT": "*fp16"}
    io |= {"N": "i32", "D": "i32", "DV": "i32", "scale": "fp32"}
    constexprs = {"CAUSAL": causal, "BLOCK_N": BLOCK_N, "BLOCK_D": 128, "BLOCK_E": 64}
    check_compiles(
        f"tessera.kernels._chunked_linear_attention_triton:cla_{kernel}_kernel",
        io | dict.fromkeys(constexprs, "constexpr"),
        constexprs,  # the fixed sequence block with the largest head and value blocks
        expect_tensor_cores=True,
    )


@pytest.mark.gpu
@pytest.mark.kernels
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("causal", [True, False])
def test_cuda_half_precision_matches_naive(monkeypatch, dtype, causal):
    monkeypatch.delenv("TESSERA_KERNELS", raising=False)
    # Unit-scale features keep the 1/N-normalised output at O(1) for a fixed tolerance.
    qkv = [t.cuda() / 8 for t in _qkv(1000, b=1, d=64, dv=64, dtype=torch.float64)]
    half = [t.to(dtype).requires_grad_() for t in qkv]
    assert CHUNKED_LINEAR_ATTENTION.select(*half, causal=causal)[0] == "triton"
    ref_leaves = [t.clone().requires_grad_() for t in qkv]
    ref = naive(*ref_leaves, causal)
    out = chunked_linear_attention(*half, causal=causal)
    tol = 1e-2 if dtype == torch.float16 else 4e-2
    scale = ref.abs().max()
    torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol * scale)
    grad = torch.randn_like(ref)
    grads = torch.autograd.grad(out, half, grad.to(dtype))
    for g, r in zip(grads, torch.autograd.grad(ref, ref_leaves, grad), strict=True):
        torch.testing.assert_close(g.double(), r, rtol=tol, atol=tol * r.abs().max())


# ----------------------------------------------------------------------------- half precision


def _uniform_half(n, high, dtype, d=16, device="cpu"):
    """q, k, v ~ U(0, high) in ``dtype`` (positive features: sum k^T v grows like N)."""
    return tuple((torch.rand(1, 1, n, d, device=device) * high).to(dtype) for _ in range(3))


def _check_half(q, k, v, causal, grad_scale=1e-3):
    """Output within half tolerance of fp64; gradients for dO ~ 1e-3 within 2x the error of
    plain PyTorch accumulating in fp32 and cast to the half dtype."""
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    out = chunked_linear_attention(*leaves, causal=causal)
    exact = [t.double().requires_grad_() for t in (q, k, v)]
    ref = chunked_linear_attention_torch(*exact, causal=causal)  # exact path, any backend
    assert torch.isfinite(out).all()
    tol = 2e-3 if q.dtype == torch.float16 else 1.6e-2
    torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol * ref.abs().max().item())

    grad = (torch.randn(out.shape, device=q.device) * grad_scale).to(q.dtype)
    grads = torch.autograd.grad(out, leaves, grad)
    want = torch.autograd.grad(ref, exact, grad.double())
    plain_in = [t.float().requires_grad_() for t in (q, k, v)]
    plain_out = chunked_linear_attention_torch(*plain_in, causal=causal)
    plain = [g.to(q.dtype) for g in torch.autograd.grad(plain_out, plain_in, grad.float())]
    for name, g, w, p in zip("qkv", grads, want, plain, strict=True):
        assert torch.isfinite(g).all(), f"d{name} is not finite"
        err, base = (g.double() - w).abs().max().item(), (p.double() - w).abs().max().item()
        assert err <= 2 * base + 1e-6 * w.abs().max().item(), f"d{name}: {err:.3e} > 2 x {base:.3e}"


@pytest.mark.parametrize("causal", [True, False])
def test_torch_fp16_long_sequence_stays_finite_and_accurate(torch_backend, causal):
    # N = 32k, U(0, 3): sum k^T v ~ 32k * 2.25 = 74k > fp16's 65 504.
    q, k, v = _uniform_half(32 * 1024, 3.0, torch.float16)
    assert CHUNKED_LINEAR_ATTENTION.select(q, k, v, causal=causal)[0] == "torch"
    _check_half(q, k, v, causal)


@pytest.mark.kernels
@pytest.mark.parametrize("causal", [True, False])
def test_triton_fp16_state_overflow_and_gradient_underflow(triton_backend, causal):
    # Interpreter-sized: N = 512 with U(0, 24) features gives the same overflowing sum
    # k^T v ~ 74k as N = 32k with U(0, 3); dO / N = 2e-6 would be an fp16 subnormal.
    q, k, v = _uniform_half(512, 24.0, torch.float16)
    assert CHUNKED_LINEAR_ATTENTION.select(q, k, v, causal=causal)[0] == "triton"
    _check_half(q, k, v, causal)


@pytest.mark.gpu
@pytest.mark.kernels
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("causal", [True, False])
def test_cuda_half_long_sequence_stays_finite_and_accurate(monkeypatch, dtype, causal):
    monkeypatch.delenv("TESSERA_KERNELS", raising=False)
    q, k, v = _uniform_half(32 * 1024, 3.0, dtype, d=64, device="cuda")
    assert CHUNKED_LINEAR_ATTENTION.select(q, k, v, causal=causal)[0] == "triton"
    _check_half(q, k, v, causal)
