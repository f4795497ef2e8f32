"""Triton path of ``scatter_linear_attention``: one program per (window, head).

Each program reads its window's rows ``offsets[w]:offsets[w + 1]`` and walks them in chunks of
``BLOCK_N`` (ScatterFormer's segment-kernel layout): a first pass accumulates KV_w and s_w in
fp32 registers, a second writes the outputs. The backward recomputes KV_w and s_w, writes
d phi(q) while accumulating dKV_w and ds_w, then writes d phi(k) and dv. Windows are disjoint,
so no atomics are needed; gradients go to fp32 buffers. The feature map is applied outside
(by autograd), the kernels see phi(q) and phi(k).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from tessera.kernels.dispatch import Constraint

BLOCK_N = 32
MAX_HEAD_DIM = 128
DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def _block_dims(d: int, dv: int) -> tuple[int, int]:
    return max(16, triton.next_power_of_2(d)), max(16, triton.next_power_of_2(dv))


@triton.jit
def _load_rows(ptr, rows, cols, end, row_stride, n_cols):
    mask = (rows[:, None] < end) & (cols[None, :] < n_cols)
    offsets = _offsets(rows, cols, row_stride)
    return tl.load(ptr + offsets, mask=mask, other=0.0)


@triton.jit
def _offsets(rows, cols, row_stride):
    """(rows, cols) element offsets in int64: N * H * D passes 2**31 at ~10M voxels."""
    return tl.cast(rows, tl.int64)[:, None] * row_stride + cols[None, :]


@triton.jit
def _window_state(
    FK,
    V,
    start,
    end,
    rn,
    rd,
    re,
    H,
    D,
    DV,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_E: tl.constexpr,
):
    kv = tl.zeros((BLOCK_D, BLOCK_E), dtype=tl.float32)  # sum phi(k)^T v
    s = tl.zeros((BLOCK_D,), dtype=tl.float32)  # sum phi(k)
    for i in range(start, end, BLOCK_N):
        fk = _load_rows(FK, i + rn, rd, end, H * D, D)
        v = _load_rows(V, i + rn, re, end, H * DV, DV)
        kv += tl.dot(tl.trans(fk), v, input_precision="ieee")
        s += tl.sum(fk.to(tl.float32), axis=0)
    return kv, s


@triton.jit
def sla_fwd_kernel(
    FQ,
    FK,
    V,
    Y,
    OFFSETS,
    H,
    D,
    DV,
    eps,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_E: tl.constexpr,
):
    w = tl.program_id(0)
    h = tl.program_id(1)
    start = tl.load(OFFSETS + w).to(tl.int32)
    end = tl.load(OFFSETS + w + 1).to(tl.int32)
    rn = tl.arange(0, BLOCK_N)
    rd = tl.arange(0, BLOCK_D)
    re = tl.arange(0, BLOCK_E)
    FQ += h * D
    FK += h * D
    V += h * DV
    Y += h * DV
    kv, s = _window_state(FK, V, start, end, rn, rd, re, H, D, DV, BLOCK_N, BLOCK_D, BLOCK_E)
    for i in range(start, end, BLOCK_N):
        rows = i + rn
        fq = _load_rows(FQ, rows, rd, end, H * D, D)
        num = tl.dot(fq, kv.to(fq.dtype), input_precision="ieee")
        den = tl.sum(fq.to(tl.float32) * s[None, :], axis=1) + eps
        mask = (rows[:, None] < end) & (re[None, :] < DV)
        y = num / den[:, None]
        tl.store(Y + _offsets(rows, re, H * DV), y.to(Y.dtype.element_ty), mask)


@triton.jit
def sla_bwd_kernel(
    FQ,
    FK,
    V,
    GY,
    GFQ,
    GFK,
    GV,
    OFFSETS,
    H,
    D,
    DV,
    eps,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_E: tl.constexpr,
):
    w = tl.program_id(0)
    h = tl.program_id(1)
    start = tl.load(OFFSETS + w).to(tl.int32)
    end = tl.load(OFFSETS + w + 1).to(tl.int32)
    rn = tl.arange(0, BLOCK_N)
    rd = tl.arange(0, BLOCK_D)
    re = tl.arange(0, BLOCK_E)
    FQ += h * D
    FK += h * D
    GFQ += h * D
    GFK += h * D
    V += h * DV
    GY += h * DV
    GV += h * DV
    kv, s = _window_state(FK, V, start, end, rn, rd, re, H, D, DV, BLOCK_N, BLOCK_D, BLOCK_E)
    gkv = tl.zeros((BLOCK_D, BLOCK_E), dtype=tl.float32)
    gs = tl.zeros((BLOCK_D,), dtype=tl.float32)
    for i in range(start, end, BLOCK_N):
        rows = i + rn
        fq = _load_rows(FQ, rows, rd, end, H * D, D)
        gy = _load_rows(GY, rows, re, end, H * DV, DV).to(tl.float32)
        num = tl.dot(fq, kv.to(fq.dtype), input_precision="ieee")
        den = tl.sum(fq.to(tl.float32) * s[None, :], axis=1) + eps
        ga = gy / den[:, None]  # gradient of the numerator
        gb = -tl.sum(ga * num, axis=1) / den  # gradient of the denominator
        # Matmul operands in the input dtype (tensor cores); accumulation stays fp32.
        gfq = tl.dot(ga.to(fq.dtype), tl.trans(kv.to(fq.dtype)), input_precision="ieee")
        gfq += gb[:, None] * s[None, :]
        mask = (rows[:, None] < end) & (rd[None, :] < D)
        tl.store(GFQ + _offsets(rows, rd, H * D), gfq, mask)
        gkv += tl.dot(tl.trans(fq), ga.to(fq.dtype), input_precision="ieee")
        gs += tl.sum(gb[:, None] * fq.to(tl.float32), axis=0)
    for i in range(start, end, BLOCK_N):
        rows = i + rn
        fk = _load_rows(FK, rows, rd, end, H * D, D)
        v = _load_rows(V, rows, re, end, H * DV, DV)
        gfk = tl.dot(v, tl.trans(gkv.to(v.dtype)), input_precision="ieee") + gs[None, :]
        gv = tl.dot(fk, gkv.to(fk.dtype), input_precision="ieee")
        row_mask = rows[:, None] < end
        tl.store(GFK + _offsets(rows, rd, H * D), gfk, row_mask & (rd[None, :] < D))
        tl.store(GV + _offsets(rows, re, H * DV), gv, row_mask & (re[None, :] < DV))


def launch_grid(windows: int, heads: int) -> tuple[int, int, int]:
    """(windows on x, heads on y, 1): x allows 2**31 - 1 windows, y is a handful of heads."""
    return windows, heads, 1


@torch.library.custom_op("tessera::scatter_linear_attention_fwd", mutates_args=())
def _fwd(
    fq: torch.Tensor, fk: torch.Tensor, v: torch.Tensor, offsets: torch.Tensor, eps: float
) -> torch.Tensor:
    fq, fk, v = fq.contiguous(), fk.contiguous(), v.contiguous()
    _, h, d = fq.shape
    dv = v.shape[2]
    block_d, block_e = _block_dims(d, dv)
    y = torch.empty_like(v)
    sla_fwd_kernel[launch_grid(offsets.numel() - 1, h)](
        fq, fk, v, y, offsets, h, d, dv, eps, BLOCK_N, block_d, block_e
    )
    return y


@_fwd.register_fake
def _(fq, fk, v, offsets, eps):
    return v.new_empty(v.shape)


@torch.library.custom_op("tessera::scatter_linear_attention_bwd", mutates_args=())
def _bwd(
    gy: torch.Tensor,
    fq: torch.Tensor,
    fk: torch.Tensor,
    v: torch.Tensor,
    offsets: torch.Tensor,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gy = gy.contiguous()
    _, h, d = fq.shape
    dv = v.shape[2]
    block_d, block_e = _block_dims(d, dv)
    gfq, gfk = (torch.zeros(fq.shape, dtype=torch.float32, device=fq.device) for _ in range(2))
    gv = torch.zeros(v.shape, dtype=torch.float32, device=v.device)
    sla_bwd_kernel[launch_grid(offsets.numel() - 1, h)](
        fq, fk, v, gy, gfq, gfk, gv, offsets, h, d, dv, eps, BLOCK_N, block_d, block_e
    )
    return gfq.to(fq.dtype), gfk.to(fk.dtype), gv.to(v.dtype)


@_bwd.register_fake
def _(gy, fq, fk, v, offsets, eps):
    return fq.new_empty(fq.shape), fk.new_empty(fk.shape), v.new_empty(v.shape)


def _setup_context(ctx, inputs, output):
    fq, fk, v, offsets, eps = inputs
    ctx.save_for_backward(fq.contiguous(), fk.contiguous(), v.contiguous(), offsets)
    ctx.eps = eps


def _backward(ctx, gy):
    fq, fk, v, offsets = ctx.saved_tensors
    gfq, gfk, gv = _bwd(gy, fq, fk, v, offsets, ctx.eps)
    return gfq, gfk, gv, None, None


_fwd.register_autograd(_backward, setup_context=_setup_context)


def scatter_linear_attention_core_triton(
    fq: torch.Tensor, fk: torch.Tensor, v: torch.Tensor, offsets: torch.Tensor, eps: float
) -> torch.Tensor:
    """(N, H, Dv) SLA on feature-mapped ``fq``, ``fk``; differentiable."""
    return _fwd(fq, fk, v, offsets, eps)


def _supported(q, k, v, offsets, **kwargs) -> str | None:
    if q.dtype not in DTYPES:
        return f"dtype {q.dtype} not in {DTYPES}"
    if max(q.shape[-1], v.shape[-1]) > MAX_HEAD_DIM:
        return f"head dim {max(q.shape[-1], v.shape[-1])} > {MAX_HEAD_DIM}"
    return None


CONSTRAINTS: tuple[Constraint, ...] = (_supported,)
