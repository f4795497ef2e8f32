"""deform_attn3d: trilinear multi-scale deformable attention vs independent references."""

import math

import pytest
import torch
import torch.nn.functional as F

from helpers.triton_compile import check_compiles
from tessera.kernels import deform_attn3d
from tessera.kernels.deform_attn3d import DEFORM_ATTN3D, deform_attn3d_torch


def _levels(shapes: list[tuple[int, int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    spatial_shapes = torch.tensor(shapes, dtype=torch.int64)
    sizes = spatial_shapes.prod(1)
    return spatial_shapes, torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])


def _inputs(shapes, b=2, nq=5, hh=2, dh=3, p=2, dtype=torch.float64, lo=-0.2, hi=1.2):
    spatial_shapes, starts = _levels(shapes)
    s = int(spatial_shapes.prod(1).sum())
    value = torch.randn(b, s, hh, dh, dtype=dtype)
    loc = torch.rand(b, nq, hh, len(shapes), p, 3, dtype=dtype) * (hi - lo) + lo
    weights = torch.rand(b, nq, hh, len(shapes), p, dtype=dtype)
    return value, spatial_shapes, starts, loc, weights


def brute_force(value, spatial_shapes, starts, loc, weights):
    """Loop over every sample and its 8 trilinear corners; zero outside the volume."""
    b, _, hh, dh = value.shape
    _, nq, _, n_levels, p, _ = loc.shape
    out = torch.zeros(b, nq, hh, dh, dtype=value.dtype)
    for bi in range(b):
        for qi in range(nq):
            for hi in range(hh):
                for li in range(n_levels):
                    t_size, h_size, w_size = spatial_shapes[li].tolist()
                    for pi in range(p):
                        x, y, t = loc[bi, qi, hi, li, pi].tolist()
                        px, py, pt = x * w_size - 0.5, y * h_size - 0.5, t * t_size - 0.5
                        x0, y0, t0 = math.floor(px), math.floor(py), math.floor(pt)
                        for ti in (t0, t0 + 1):
                            for yi in (y0, y0 + 1):
                                for xi in (x0, x0 + 1):
                                    if not (
                                        0 <= ti < t_size and 0 <= yi < h_size and 0 <= xi < w_size
                                    ):
                                        continue
                                    w = (1 - abs(px - xi)) * (1 - abs(py - yi)) * (1 - abs(pt - ti))
                                    row = int(starts[li]) + (ti * h_size + yi) * w_size + xi
                                    a = weights[bi, qi, hi, li, pi]
                                    out[bi, qi, hi] += a * w * value[bi, row, hi]
    return out.reshape(b, nq, hh * dh)


def msda_2d(value, spatial_shapes_2d, starts, loc_xy, weights):
    """mmcv's 2-D multi-scale deformable attention written with 4-D ``F.grid_sample``."""
    b, _, hh, dh = value.shape
    _, nq, _, n_levels, p, _ = loc_xy.shape
    out = 0
    for li, (h_size, w_size) in enumerate(spatial_shapes_2d.tolist()):
        start = int(starts[li])
        v = value[:, start : start + h_size * w_size].permute(0, 2, 3, 1)
        v = v.reshape(b * hh, dh, h_size, w_size)
        grid = (2 * loc_xy[:, :, :, li] - 1).transpose(1, 2).reshape(b * hh, nq, p, 2)
        sampled = F.grid_sample(v, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        a = weights[:, :, :, li].transpose(1, 2).reshape(b * hh, 1, nq, p)
        out = out + (sampled * a).sum(-1)  # (B*Hh, Dh, Nq)
    return out.view(b, hh, dh, nq).permute(0, 3, 1, 2).reshape(b, nq, hh * dh)


SHAPES = [(2, 3, 4), (1, 2, 2), (3, 1, 2)]


def test_torch_path_matches_brute_force_trilinear_loop():
    args = _inputs(SHAPES)
    torch.testing.assert_close(deform_attn3d(*args), brute_force(*args), rtol=1e-12, atol=1e-12)


def test_single_frame_levels_reproduce_the_2d_op():
    hw = [(3, 4), (2, 5)]
    value, spatial_shapes, starts, loc, weights = _inputs([(1, h, w) for h, w in hw], p=3)
    loc[..., 2] = 0.5  # the centre of the only frame: no interpolation along t
    expected = msda_2d(value, torch.tensor(hw), starts, loc[..., :2], weights)
    torch.testing.assert_close(deform_attn3d(value, spatial_shapes, starts, loc, weights), expected)


def _border_case():
    """One 2x3x4 level, one query, one point per head at chosen locations."""
    value, spatial_shapes, starts, _, _ = _inputs([(2, 3, 4)], b=1, nq=4, hh=1, dh=3, p=1)
    loc = torch.tensor(
        [
            [0.0, 0.0, 0.0],  # corner of the volume: half a voxel outside on every axis
            [1.0, 1.0, 1.0],  # opposite corner
            [-0.5, 0.5, 0.5],  # far outside along x
            [0.5, 0.5, 2.0],  # far outside along t
        ],
        dtype=torch.float64,
    ).view(1, 4, 1, 1, 1, 3)
    weights = torch.ones(1, 4, 1, 1, 1, dtype=torch.float64)
    return value, spatial_shapes, starts, loc, weights


def _check_border(out, value):
    first, last = value[0, 0, 0], value[0, -1, 0]
    torch.testing.assert_close(out[0, 0], first / 8)  # 1 of 8 corners inside, weight 1/8
    torch.testing.assert_close(out[0, 1], last / 8)
    assert torch.equal(out[0, 2:], torch.zeros_like(out[0, 2:]))


def test_border_and_out_of_range_locations_read_zero_padding():
    args = _border_case()
    out = deform_attn3d(*args)
    _check_border(out, args[0])
    torch.testing.assert_close(out, brute_force(*args))


def test_float64_gradcheck_for_value_locations_and_weights():
    value, spatial_shapes, starts, loc, weights = _inputs(SHAPES, b=1, nq=3, hh=2, dh=2)
    inputs = tuple(t.requires_grad_() for t in (value, loc, weights))
    assert torch.autograd.gradcheck(
        lambda v, sl, aw: deform_attn3d(v, spatial_shapes, starts, sl, aw), inputs
    )


def test_cpu_tensors_run_the_torch_path(monkeypatch):
    monkeypatch.delenv("TESSERA_KERNELS", raising=False)
    assert DEFORM_ATTN3D.select(*_inputs(SHAPES))[0] == "torch"


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda a: (a[0][0], *a[1:]), "value"),
        (lambda a: (a[0], a[1][:, :2], *a[2:]), "spatial_shapes"),
        (lambda a: (*a[:3], a[3][..., :2], a[4]), "sampling_locations"),
        (lambda a: (*a[:4], a[4][..., :1]), "attention_weights"),
        (lambda a: (a[0][:, :-1], *a[1:]), "S="),
        (lambda a: (*a[:2], a[2].flip(0), *a[3:]), "level_start_index"),
    ],
)
def test_inconsistent_inputs_raise_value_error(mutate, match):
    with pytest.raises(ValueError, match=match):
        deform_attn3d(*mutate(_inputs(SHAPES)))


@pytest.mark.kernels
def test_triton_forward_and_backward_match_torch_path(triton_backend):
    # 37 queries: a partial query block; Dh=70: two channel blocks of the kernel's 64.
    value, spatial_shapes, starts, loc, weights = _inputs(
        SHAPES, b=1, nq=37, dh=70, dtype=torch.float32
    )
    assert DEFORM_ATTN3D.select(value, spatial_shapes, starts, loc, weights)[0] == "triton"
    leaves = [t.clone().requires_grad_() for t in (value, loc, weights)]
    ref_leaves = [t.clone().requires_grad_() for t in (value, loc, weights)]
    out = deform_attn3d(leaves[0], spatial_shapes, starts, leaves[1], leaves[2])
    ref = deform_attn3d_torch(ref_leaves[0], spatial_shapes, starts, ref_leaves[1], ref_leaves[2])
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(ref)
    grads = torch.autograd.grad(out, leaves, grad)
    ref_grads = torch.autograd.grad(ref, ref_leaves, grad)
    for name, g, r in zip(("value", "locations", "weights"), grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-4, msg=f"grad of {name}")


@pytest.mark.kernels
def test_triton_border_and_out_of_range(triton_backend):
    args = [t.float() if t.is_floating_point() else t for t in _border_case()]
    _check_border(deform_attn3d(*args), args[0])


@pytest.mark.kernels
def test_triton_op_registration_passes_opcheck():
    args = _inputs([(2, 3, 4), (1, 2, 2)], b=1, nq=3, dtype=torch.float32)
    args = [t.requires_grad_() if t.is_floating_point() else t for t in args]
    torch.library.opcheck(
        torch.ops.tessera.deform_attn3d_fwd.default,
        args,
        test_utils=("test_schema", "test_faketensor", "test_autograd_registration"),
    )


@pytest.mark.kernels
@pytest.mark.parametrize("kernel", ["fwd", "bwd"])
def test_triton_kernels_compile_for_sm80_and_sm90(kernel):
    io = {"VALUE": "*fp16", "SHAPES": "*i64", "STARTS": "*i64", "LOC": "*fp16", "AW": "*fp16"}
    if kernel == "fwd":
        io["OUT"] = "*fp16"
    else:
        io |= {"GRAD_OUT": "*fp16", "GRAD_VALUE": "*fp32", "GRAD_LOC": "*fp32", "GRAD_AW": "*fp32"}
    sizes = dict.fromkeys(("S", "NQ", "HH", "DH", "L", "P"), "i32")
    check_compiles(
        f"tessera.kernels._deform_attn3d_triton:deform_attn3d_{kernel}_kernel",
        io | sizes | {"BLOCK_Q": "constexpr", "BLOCK_D": "constexpr"},
        {"BLOCK_Q": 32, "BLOCK_D": 64},  # the fixed query block and the largest channel block
        expect_tensor_cores=False,  # gathers and FMAs only
    )


@pytest.mark.gpu
@pytest.mark.kernels
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_half_precision_matches_fp32_torch_path(monkeypatch, dtype):
    monkeypatch.delenv("TESSERA_KERNELS", raising=False)
    args = [t.cuda() for t in _inputs(SHAPES, nq=100, dh=32, dtype=torch.float32)]
    half = [t.to(dtype).requires_grad_() if t.is_floating_point() else t for t in args]
    assert DEFORM_ATTN3D.select(*half)[0] == "triton"
    ref_leaves = [t.clone().requires_grad_() for t in (args[0], args[3], args[4])]
    ref = deform_attn3d_torch(ref_leaves[0], args[1], args[2], ref_leaves[1], ref_leaves[2])
    out = deform_attn3d(*half)
    tol = 2e-2 if dtype == torch.float16 else 6e-2
    torch.testing.assert_close(out.float(), ref, rtol=tol, atol=tol)
    grad = torch.randn_like(ref)
    grads = torch.autograd.grad(out, (half[0], half[3], half[4]), grad.to(dtype))
    for g, r in zip(grads, torch.autograd.grad(ref, ref_leaves, grad), strict=True):
        torch.testing.assert_close(g.float(), r, rtol=tol, atol=tol * max(1.0, r.abs().max()))
