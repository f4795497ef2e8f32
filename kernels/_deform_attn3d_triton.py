"""Triton path of ``deform_attn3d``: one program per (query block, batch, head, channel block).

The (query block, batch, head) product is on grid x, channel blocks on y; offsets that
scale with the batch or the number of samples are computed in int64.

Each program walks levels and points and gathers the 8 trilinear corners of every sample for
``BLOCK_Q`` queries and a block of up to 64 channels at once; out-of-volume corners read zeros, like
``F.grid_sample(align_corners=False, padding_mode="zeros")``. The backward recomputes the
samples, writes the location and weight gradients per sample and scatters the value
gradient to the corners with fp32 atomics (several queries may hit the same voxel); the
location and weight gradients are summed over channel blocks with atomics too.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from tessera.kernels.dispatch import Constraint

BLOCK_Q = 32
BLOCK_D_MAX = 64  # channels per program; larger heads are split over the grid's third axis
DTYPES = (torch.float16, torch.bfloat16, torch.float32)


@triton.jit
def _sample_frame(LOC, SHAPES, STARTS, lvl, idx, q_mask):
    """Level geometry and the lower corner / fractions of one sample per query."""
    size_t = tl.load(SHAPES + 3 * lvl).to(tl.int32)
    size_h = tl.load(SHAPES + 3 * lvl + 1).to(tl.int32)
    size_w = tl.load(SHAPES + 3 * lvl + 2).to(tl.int32)
    start = tl.load(STARTS + lvl).to(tl.int32)
    # align_corners=False: normalised coordinate c addresses pixel c * size - 0.5.
    px = tl.load(LOC + idx * 3, mask=q_mask, other=0.0).to(tl.float32) * size_w - 0.5
    py = tl.load(LOC + idx * 3 + 1, mask=q_mask, other=0.0).to(tl.float32) * size_h - 0.5
    pt = tl.load(LOC + idx * 3 + 2, mask=q_mask, other=0.0).to(tl.float32) * size_t - 0.5
    x0, y0, t0 = tl.floor(px), tl.floor(py), tl.floor(pt)
    return (size_t, size_h, size_w, start, x0.to(tl.int32), y0.to(tl.int32), t0.to(tl.int32),
            px - x0, py - y0, pt - t0)  # fmt: skip


@triton.jit
def _corner(xi, yi, ti, size_t, size_h, size_w, start, row_stride, q_mask):
    """Offset (in elements) of a corner voxel and whether it lies inside the volume."""
    inside = (xi >= 0) & (xi < size_w) & (yi >= 0) & (yi < size_h) & (ti >= 0) & (ti < size_t)
    voxel = start + (ti * size_h + yi) * size_w + xi
    return voxel.to(tl.int64) * row_stride, inside & q_mask


@triton.jit
def deform_attn3d_fwd_kernel(
    VALUE,
    SHAPES,
    STARTS,
    LOC,
    AW,
    OUT,
    S,
    NQ,
    HH,
    DH,
    L,
    P,
    BLOCK_Q: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    n_qblocks = tl.cdiv(NQ, BLOCK_Q)
    bh = tl.program_id(0) // n_qblocks
    b = tl.cast(bh // HH, tl.int64)
    h = bh % HH
    rq = (tl.program_id(0) % n_qblocks) * BLOCK_Q + tl.arange(0, BLOCK_Q)
    rd = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    q_mask = rq < NQ
    d_mask = rd[None, :] < DH
    row_stride = HH * DH
    value = VALUE + b * S * row_stride + h * DH
    sample_base = ((b * NQ + rq) * HH + h) * (L * P)  # first (level, point) of each query
    acc = tl.zeros((BLOCK_Q, BLOCK_D), dtype=tl.float32)
    for lvl in range(L):
        for p in range(P):
            idx = sample_base + lvl * P + p
            size_t, size_h, size_w, start, x0, y0, t0, fx, fy, ft = _sample_frame(
                LOC, SHAPES, STARTS, lvl, idx, q_mask
            )
            a = tl.load(AW + idx, mask=q_mask, other=0.0).to(tl.float32)
            for dt in tl.static_range(2):
                wt = ft * dt + (1 - ft) * (1 - dt)
                for dy in tl.static_range(2):
                    wy = fy * dy + (1 - fy) * (1 - dy)
                    for dx in tl.static_range(2):
                        wx = fx * dx + (1 - fx) * (1 - dx)
                        off, valid = _corner(
                            x0 + dx, y0 + dy, t0 + dt, size_t, size_h, size_w, start,
                            row_stride, q_mask,
                        )  # fmt: skip
                        corner = tl.load(
                            value + off[:, None] + rd[None, :],
                            mask=valid[:, None] & d_mask,
                            other=0.0,
                        ).to(tl.float32)
                        acc += (a * wx * wy * wt)[:, None] * corner
    out = OUT + ((b * NQ + rq) * HH + h)[:, None] * DH + rd[None, :]
    tl.store(out, acc.to(OUT.dtype.element_ty), mask=q_mask[:, None] & d_mask)


@triton.jit
def deform_attn3d_bwd_kernel(
    VALUE,
    SHAPES,
    STARTS,
    LOC,
    AW,
    GRAD_OUT,
    GRAD_VALUE,
    GRAD_LOC,
    GRAD_AW,
    S,
    NQ,
    HH,
    DH,
    L,
    P,
    BLOCK_Q: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    n_qblocks = tl.cdiv(NQ, BLOCK_Q)
    bh = tl.program_id(0) // n_qblocks
    b = tl.cast(bh // HH, tl.int64)
    h = bh % HH
    rq = (tl.program_id(0) % n_qblocks) * BLOCK_Q + tl.arange(0, BLOCK_Q)
    rd = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    q_mask = rq < NQ
    d_mask = rd[None, :] < DH
    row_stride = HH * DH
    batch_offset = b * S * row_stride + h * DH
    value = VALUE + batch_offset
    grad_value = GRAD_VALUE + batch_offset
    g_ptr = GRAD_OUT + ((b * NQ + rq) * HH + h)[:, None] * DH + rd[None, :]
    g = tl.load(g_ptr, mask=q_mask[:, None] & d_mask, other=0.0).to(tl.float32)
    sample_base = ((b * NQ + rq) * HH + h) * (L * P)
    for lvl in range(L):
        for p in range(P):
            idx = sample_base + lvl * P + p
            size_t, size_h, size_w, start, x0, y0, t0, fx, fy, ft = _sample_frame(
                LOC, SHAPES, STARTS, lvl, idx, q_mask
            )
            a = tl.load(AW + idx, mask=q_mask, other=0.0).to(tl.float32)
            g_sample = tl.zeros((BLOCK_Q,), dtype=tl.float32)  # g . sampled value
            g_px = tl.zeros((BLOCK_Q,), dtype=tl.float32)
            g_py = tl.zeros((BLOCK_Q,), dtype=tl.float32)
            g_pt = tl.zeros((BLOCK_Q,), dtype=tl.float32)
            for dt in tl.static_range(2):
                wt = ft * dt + (1 - ft) * (1 - dt)
                for dy in tl.static_range(2):
                    wy = fy * dy + (1 - fy) * (1 - dy)
                    for dx in tl.static_range(2):
                        wx = fx * dx + (1 - fx) * (1 - dx)
                        off, valid = _corner(
                            x0 + dx, y0 + dy, t0 + dt, size_t, size_h, size_w, start,
                            row_stride, q_mask,
                        )  # fmt: skip
                        mask = valid[:, None] & d_mask
                        corner = tl.load(value + off[:, None] + rd[None, :], mask=mask, other=0.0)
                        g_corner = tl.sum(g * corner.to(tl.float32), axis=1)
                        g_sample += wx * wy * wt * g_corner
                        # d(weight)/d(coordinate) is +-1 times the other two factors.
                        g_px += (2 * dx - 1) * wy * wt * g_corner
                        g_py += (2 * dy - 1) * wx * wt * g_corner
                        g_pt += (2 * dt - 1) * wx * wy * g_corner
                        tl.atomic_add(
                            grad_value + off[:, None] + rd[None, :],
                            (a * wx * wy * wt)[:, None] * g,
                            mask=mask,
                        )
            tl.atomic_add(GRAD_AW + idx, g_sample, mask=q_mask)
            tl.atomic_add(GRAD_LOC + idx * 3, a * g_px * size_w, mask=q_mask)
            tl.atomic_add(GRAD_LOC + idx * 3 + 1, a * g_py * size_h, mask=q_mask)
            tl.atomic_add(GRAD_LOC + idx * 3 + 2, a * g_pt * size_t, mask=q_mask)


def _geometry(value: torch.Tensor, loc: torch.Tensor) -> tuple[int, ...]:
    b, s, hh, dh = value.shape
    _, nq, _, n_levels, p, _ = loc.shape
    return b, s, hh, dh, nq, n_levels, p


MAX_GRID_X = 2**31 - 1


def launch_grid(b: int, hh: int, dh: int, nq: int) -> tuple[int, int, int]:
    """(query blocks x batch x heads on x, channel blocks on y, 1), within CUDA's limits
    (x < 2**31, y <= 65 535) for any batch; x would only overflow for sampling tensors of
    more than 2**36 points, which do not fit on a GPU."""
    x = triton.cdiv(nq, BLOCK_Q) * b * hh
    if x > MAX_GRID_X:
        raise ValueError(
            f"deform_attn3d: {b} x {hh} x {nq} queries need grid x = {x} > {MAX_GRID_X}; "
            "split the batch"
        )
    return x, triton.cdiv(dh, min(BLOCK_D_MAX, triton.next_power_of_2(dh))), 1


def _grid_and_block(b: int, hh: int, dh: int, nq: int) -> tuple[tuple[int, int, int], int]:
    return launch_grid(b, hh, dh, nq), min(BLOCK_D_MAX, triton.next_power_of_2(dh))


@torch.library.custom_op("tessera::deform_attn3d_fwd", mutates_args=())
def _fwd(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    value, loc, aw = (t.contiguous() for t in (value, sampling_locations, attention_weights))
    b, s, hh, dh, nq, n_levels, p = _geometry(value, loc)
    out = value.new_empty(b, nq, hh * dh)
    grid, block_d = _grid_and_block(b, hh, dh, nq)
    deform_attn3d_fwd_kernel[grid](
        value, spatial_shapes.contiguous(), level_start_index.contiguous(), loc, aw, out,
        s, nq, hh, dh, n_levels, p, BLOCK_Q, block_d,
    )  # fmt: skip
    return out


@_fwd.register_fake
def _(value, spatial_shapes, level_start_index, sampling_locations, attention_weights):
    b, _, hh, dh = value.shape
    return value.new_empty(b, sampling_locations.shape[1], hh * dh)


@torch.library.custom_op("tessera::deform_attn3d_bwd", mutates_args=())
def _bwd(
    grad: torch.Tensor,
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    value, loc, aw = (t.contiguous() for t in (value, sampling_locations, attention_weights))
    b, s, hh, dh, nq, n_levels, p = _geometry(value, loc)
    grad_value = torch.zeros(value.shape, dtype=torch.float32, device=value.device)
    grad_loc = torch.zeros(loc.shape, dtype=torch.float32, device=loc.device)
    grad_aw = torch.zeros(aw.shape, dtype=torch.float32, device=aw.device)
    grid, block_d = _grid_and_block(b, hh, dh, nq)
    deform_attn3d_bwd_kernel[grid](
        value, spatial_shapes.contiguous(), level_start_index.contiguous(), loc, aw,
        grad.contiguous(), grad_value, grad_loc, grad_aw,
        s, nq, hh, dh, n_levels, p, BLOCK_Q, block_d,
    )  # fmt: skip
    return grad_value.to(value.dtype), grad_loc.to(loc.dtype), grad_aw.to(aw.dtype)


@_bwd.register_fake
def _(grad, value, spatial_shapes, level_start_index, sampling_locations, attention_weights):
    return (
        value.new_empty(value.shape),
        sampling_locations.new_empty(sampling_locations.shape),
        attention_weights.new_empty(attention_weights.shape),
    )


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _backward(ctx, grad):
    value, shapes, starts, loc, aw = ctx.saved_tensors
    grad_value, grad_loc, grad_aw = _bwd(grad, value, shapes, starts, loc, aw)
    return grad_value, None, None, grad_loc, grad_aw


_fwd.register_autograd(_backward, setup_context=_setup_context)


def deform_attn3d_triton(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Triton path; same contract as ``deform_attn3d``."""
    return _fwd(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)


def _supported(value, spatial_shapes, level_start_index, sampling_locations, attention_weights):
    if value.dtype not in DTYPES:
        return f"dtype {value.dtype} not in {DTYPES}"
    return None


CONSTRAINTS: tuple[Constraint, ...] = (_supported,)
