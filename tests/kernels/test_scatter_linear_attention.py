"""scatter_linear_attention: ScatterFormer's per-window linear attention vs a per-window loop."""

import pytest
import torch
import torch.nn.functional as F

from helpers.triton_compile import check_compiles
from tessera.kernels import scatter_linear_attention
from tessera.kernels.scatter_linear_attention import (
    SCATTER_LINEAR_ATTENTION,
    scatter_linear_attention_torch,
)

# Windows of length 0, 1, 2, 37, 0 and one large window.
LENGTHS = [0, 1, 2, 37, 0, 300]


def _offsets(lengths: list[int]) -> torch.Tensor:
    return torch.tensor([0, *lengths]).cumsum(0)


def _qkv(n: int, h: int = 2, d: int = 6, dv: int = 5, dtype=torch.float64):
    return tuple(torch.randn(n, h, size, dtype=dtype) for size in (d, d, dv))


def per_window_loop(q, k, v, offsets, feature_map="relu", eps=1e-6):
    """The definition, one window at a time."""
    phi = F.relu if feature_map == "relu" else (lambda x: F.elu(x) + 1)
    outs = []
    for w in range(offsets.numel() - 1):
        rows = slice(int(offsets[w]), int(offsets[w + 1]))
        fq, fk = phi(q[rows]), phi(k[rows])  # (n_w, H, D)
        kv = torch.einsum("nhd,nhe->hde", fk, v[rows])
        s = fk.sum(0)  # (H, D)
        den = torch.einsum("nhd,hd->nh", fq, s)[..., None] + eps
        outs.append(torch.einsum("nhd,hde->nhe", fq, kv) / den)
    return torch.cat(outs)


@pytest.mark.parametrize("feature_map", ["relu", "elu1"])
def test_matches_per_window_loop_with_empty_single_and_large_windows(feature_map):
    offsets = _offsets(LENGTHS)
    q, k, v = _qkv(sum(LENGTHS))
    out = scatter_linear_attention(q, k, v, offsets, feature_map=feature_map)
    torch.testing.assert_close(out, per_window_loop(q, k, v, offsets, feature_map))


@pytest.mark.parametrize("feature_map", ["relu", "elu1"])
def test_gradients_match_per_window_loop(feature_map):
    offsets = _offsets(LENGTHS)
    leaves = [t.requires_grad_() for t in _qkv(sum(LENGTHS))]
    ref_leaves = [t.detach().clone().requires_grad_() for t in leaves]
    out = scatter_linear_attention(*leaves, offsets, feature_map=feature_map)
    ref = per_window_loop(*ref_leaves, offsets, feature_map)
    grad = torch.randn_like(ref)
    grads = torch.autograd.grad(out, leaves, grad)
    for g, r in zip(grads, torch.autograd.grad(ref, ref_leaves, grad), strict=True):
        torch.testing.assert_close(g, r)


def test_float64_gradcheck():
    offsets = _offsets([3, 0, 1, 5])
    inputs = tuple(t.requires_grad_() for t in _qkv(9, d=3, dv=2))
    assert torch.autograd.gradcheck(
        lambda q, k, v: scatter_linear_attention(q, k, v, offsets, feature_map="elu1"), inputs
    )


def test_permuting_windows_permutes_outputs():
    lengths = [4, 0, 7, 1, 12, 2]
    offsets = _offsets(lengths)
    q, k, v = _qkv(sum(lengths))
    order = [4, 2, 0, 5, 1, 3]
    rows = torch.cat([torch.arange(int(offsets[w]), int(offsets[w + 1])) for w in order])
    permuted = scatter_linear_attention(
        q[rows], k[rows], v[rows], _offsets([lengths[w] for w in order])
    )
    torch.testing.assert_close(permuted, scatter_linear_attention(q, k, v, offsets)[rows])


def test_no_cross_window_leakage():
    """Changing one window's keys and values leaves every other window's output unchanged."""
    offsets = _offsets([5, 6, 7])
    q, k, v = _qkv(18)
    before = scatter_linear_attention(q, k, v, offsets)
    k2, v2 = k.clone(), v.clone()
    k2[5:11], v2[5:11] = torch.randn_like(k2[5:11]), torch.randn_like(v2[5:11])
    after = scatter_linear_attention(q, k2, v2, offsets)
    torch.testing.assert_close(after[:5], before[:5], rtol=0, atol=0)
    torch.testing.assert_close(after[11:], before[11:], rtol=0, atol=0)
    assert not torch.allclose(after[5:11], before[5:11])


@pytest.mark.parametrize(
    "offsets, feature_map, match",
    [
        (torch.tensor([0, 3]), "relu", "offsets must start at 0, end at N=4"),
        (torch.tensor([0, 3, 2, 4]), "relu", "non-decreasing"),
        (torch.tensor([0.0, 4.0]), "relu", "offsets"),
        (torch.tensor([0, 4]), "softmax", "feature_map"),
    ],
)
def test_invalid_arguments_raise_value_error(offsets, feature_map, match):
    q, k, v = _qkv(4)
    with pytest.raises(ValueError, match=match):
        scatter_linear_attention(q, k, v, offsets, feature_map=feature_map)


def test_mismatched_shapes_raise_value_error():
    q, k, v = _qkv(4)
    with pytest.raises(ValueError, match="v must be"):
        scatter_linear_attention(q, k, v[:3], _offsets([4]))


@pytest.mark.kernels
@pytest.mark.parametrize("feature_map", ["relu", "elu1"])
def test_triton_forward_and_backward_match_torch_path(triton_backend, feature_map):
    lengths = [0, 1, 2, 37, 0, 70]  # 70 > 2 chunks of the kernel's 32 rows
    offsets = _offsets(lengths)
    q, k, v = _qkv(sum(lengths), d=12, dv=20, dtype=torch.float32)
    assert SCATTER_LINEAR_ATTENTION.select(q, k, v, offsets)[0] == "triton"
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    ref_leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    out = scatter_linear_attention(*leaves, offsets, feature_map=feature_map)
    ref = scatter_linear_attention_torch(*ref_leaves, offsets, feature_map=feature_map)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(ref)
    grads = torch.autograd.grad(out, leaves, grad)
    for g, r in zip(grads, torch.autograd.grad(ref, ref_leaves, grad), strict=True):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-4)


@pytest.mark.kernels
def test_triton_op_registration_passes_opcheck():
    offsets = _offsets([3, 0, 20])
    fq, fk, v = (t.relu().requires_grad_() for t in _qkv(23, dtype=torch.float32))
    torch.library.opcheck(
        torch.ops.tessera.scatter_linear_attention_fwd.default,
        (fq, fk, v, offsets, 1e-6),
        test_utils=("test_schema", "test_faketensor", "test_autograd_registration"),
    )


@pytest.mark.kernels
@pytest.mark.parametrize("kernel", ["fwd", "bwd"])
def test_triton_kernels_compile_for_sm80_and_sm90(kernel):
    io = {"FQ": "*fp16", "FK": "*fp16", "V": "*fp16"}
    if kernel == "fwd":
        io["Y"] = "*fp16"
    else:
        io |= {"GY": "*fp16", "GFQ": "*fp32", "GFK": "*fp32", "GV": "*fp32"}
    io |= {"OFFSETS": "*i64", "H": "i32", "D": "i32", "DV": "i32", "eps": "fp32"}
    blocks = {"BLOCK_N": 32, "BLOCK_D": 128, "BLOCK_E": 128}  # fixed rows, largest head dims
    check_compiles(
        f"tessera.kernels._scatter_linear_attention_triton:sla_{kernel}_kernel",
        io | dict.fromkeys(blocks, "constexpr"),
        blocks,
        expect_tensor_cores=True,
    )


@pytest.mark.gpu
@pytest.mark.kernels
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_half_precision_matches_fp32_torch_path(monkeypatch, dtype):
    monkeypatch.delenv("TESSERA_KERNELS", raising=False)
    offsets = _offsets(LENGTHS).cuda()
    qkv = [t.cuda() for t in _qkv(sum(LENGTHS), h=4, d=32, dv=32, dtype=torch.float32)]
    half = [t.to(dtype).requires_grad_() for t in qkv]
    assert SCATTER_LINEAR_ATTENTION.select(*half, offsets)[0] == "triton"
    ref_leaves = [t.clone().requires_grad_() for t in qkv]
    ref = scatter_linear_attention_torch(*ref_leaves, offsets)
    out = scatter_linear_attention(*half, offsets)
    tol = 2e-2 if dtype == torch.float16 else 6e-2
    torch.testing.assert_close(out.float(), ref, rtol=tol, atol=tol)
    grad = torch.randn_like(ref)
    grads = torch.autograd.grad(out, half, grad.to(dtype))
    for g, r in zip(grads, torch.autograd.grad(ref, ref_leaves, grad), strict=True):
        torch.testing.assert_close(g.float(), r, rtol=tol, atol=tol * max(1.0, r.abs().max()))
