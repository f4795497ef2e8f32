"""Triton path of ``chunked_linear_attention`` (Lightning Attention-2 style block tiling).

One program per (batch * head, block of value features) walks the sequence in blocks of
``BLOCK_N`` positions with a (D, BLOCK_E) fp32 running state, so memory is O(N * D + D * Dv).
Causal: intra-block masked (q k^T) v plus the inter-block state q S. The backward runs the same
walk forward for dq (state S = sum k^T v) and backward for dk, dv (state R = sum q^T dO);
dq and dk sum over value features and are accumulated with atomics in fp32 buffers.

Half precision: the states are fp32 and the 1/N scale is applied to them (and to each
block's fp32 products) before any cast to the input dtype, so sum k^T v cannot overflow
fp16 and dO / N cannot underflow it.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from tessera.kernels.dispatch import Constraint

BLOCK_N = 64
MAX_HEAD_DIM = 128
BLOCK_E_MAX = 64
DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def _block_dims(d: int, dv: int) -> tuple[int, int]:
    return max(16, triton.next_power_of_2(d)), min(BLOCK_E_MAX, max(16, triton.next_power_of_2(dv)))


@triton.jit
def _load_rows(ptr, rows, cols, n_rows, n_cols):
    mask = (rows[:, None] < n_rows) & (cols[None, :] < n_cols)
    offsets = tl.cast(rows, tl.int64)[:, None] * n_cols + cols[None, :]  # N * D may pass 2**31
    return tl.load(ptr + offsets, mask=mask, other=0.0)


@triton.jit
def cla_fwd_kernel(
    Q,
    K,
    V,
    Out,
    N,
    D,
    DV,
    scale,
    CAUSAL: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_E: tl.constexpr,
):
    bh = tl.program_id(0).to(tl.int64)
    rn = tl.arange(0, BLOCK_N)
    rd = tl.arange(0, BLOCK_D)
    re = tl.program_id(1) * BLOCK_E + tl.arange(0, BLOCK_E)
    Q += bh * N * D
    K += bh * N * D
    V += bh * N * DV
    Out += bh * N * DV
    state = tl.zeros((BLOCK_D, BLOCK_E), dtype=tl.float32)  # sum of k^T v so far
    if not CAUSAL:
        for start in range(0, N, BLOCK_N):
            k = _load_rows(K, start + rn, rd, N, D)
            v = _load_rows(V, start + rn, re, N, DV)
            state += tl.dot(tl.trans(k), v, input_precision="ieee")
    for start in range(0, N, BLOCK_N):
        q = _load_rows(Q, start + rn, rd, N, D)
        # The state is scaled by 1/N in fp32 before the half cast: sum k^T v overflows fp16
        # at N ~ 30k with O(1) features, its mean does not.
        out = tl.dot(q, (state * scale).to(q.dtype), input_precision="ieee")
        if CAUSAL:
            k = _load_rows(K, start + rn, rd, N, D)
            v = _load_rows(V, start + rn, re, N, DV)
            scores = tl.dot(q, tl.trans(k), input_precision="ieee")  # one block: no overflow
            scores = tl.where(rn[:, None] >= rn[None, :], scores, 0.0)
            out += tl.dot(scores.to(v.dtype), v, input_precision="ieee") * scale
            state += tl.dot(tl.trans(k), v, input_precision="ieee")
        rows = tl.cast(start + rn, tl.int64)
        mask = (rows[:, None] < N) & (re[None, :] < DV)
        tl.store(Out + rows[:, None] * DV + re[None, :], out.to(Out.dtype.element_ty), mask)


@triton.jit
def cla_bwd_kernel(
    Q,
    K,
    V,
    DO,
    DQ,
    DK,
    DV_OUT,
    N,
    D,
    DV,
    scale,
    CAUSAL: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_E: tl.constexpr,
):
    bh = tl.program_id(0).to(tl.int64)
    rn = tl.arange(0, BLOCK_N)
    rd = tl.arange(0, BLOCK_D)
    re = tl.program_id(1) * BLOCK_E + tl.arange(0, BLOCK_E)
    Q += bh * N * D
    K += bh * N * D
    DQ += bh * N * D
    DK += bh * N * D
    V += bh * N * DV
    DO += bh * N * DV
    DV_OUT += bh * N * DV
    tril = rn[:, None] >= rn[None, :]
    d_mask = rd[None, :] < D

    # dq_i = sum_{j in J(i)} (g_i . v_j) k_j, walking forward with S = sum k^T v.
    state = tl.zeros((BLOCK_D, BLOCK_E), dtype=tl.float32)
    if not CAUSAL:
        for start in range(0, N, BLOCK_N):
            k = _load_rows(K, start + rn, rd, N, D)
            v = _load_rows(V, start + rn, re, N, DV)
            state += tl.dot(tl.trans(k), v, input_precision="ieee")
    # The 1/N scale goes on the fp32 states and products, never on dO in half precision,
    # where dO / N underflows (dO ~ 1e-3, N ~ 30k).
    for start in range(0, N, BLOCK_N):
        rows = start + rn
        g = _load_rows(DO, rows, re, N, DV).to(Q.dtype.element_ty)
        dq = tl.dot(g, tl.trans((state * scale).to(g.dtype)), input_precision="ieee")
        if CAUSAL:
            k = _load_rows(K, rows, rd, N, D)
            v = _load_rows(V, rows, re, N, DV)
            p = tl.where(tril, tl.dot(g, tl.trans(v), input_precision="ieee"), 0.0)
            dq += tl.dot(p.to(k.dtype), k, input_precision="ieee") * scale
            state += tl.dot(tl.trans(k), v, input_precision="ieee")
        rows64 = tl.cast(rows, tl.int64)[:, None]
        tl.atomic_add(DQ + rows64 * D + rd[None, :], dq, mask=(rows[:, None] < N) & d_mask)

    # dk_j = sum_{i: j in J(i)} (g_i . v_j) q_i, dv_j = sum (q_i . k_j) g_i, walking backward
    # with R = sum q^T g.
    rstate = tl.zeros((BLOCK_D, BLOCK_E), dtype=tl.float32)
    if not CAUSAL:
        for start in range(0, N, BLOCK_N):
            q = _load_rows(Q, start + rn, rd, N, D)
            g = _load_rows(DO, start + rn, re, N, DV).to(q.dtype)
            rstate += tl.dot(tl.trans(q), g, input_precision="ieee")
    n_blocks = tl.cdiv(N, BLOCK_N)
    for i in range(0, n_blocks):
        rows = (n_blocks - 1 - i) * BLOCK_N + rn
        k = _load_rows(K, rows, rd, N, D)
        v = _load_rows(V, rows, re, N, DV)
        r_scaled = rstate * scale
        dk = tl.dot(v, tl.trans(r_scaled.to(v.dtype)), input_precision="ieee")
        dv = tl.dot(k, r_scaled.to(k.dtype), input_precision="ieee")
        if CAUSAL:
            q = _load_rows(Q, rows, rd, N, D)
            g = _load_rows(DO, rows, re, N, DV).to(q.dtype)
            p = tl.where(tril, tl.dot(g, tl.trans(v), input_precision="ieee"), 0.0)
            dk += tl.dot(tl.trans(p.to(q.dtype)), q, input_precision="ieee") * scale
            a = tl.where(tril, tl.dot(q, tl.trans(k), input_precision="ieee"), 0.0)
            dv += tl.dot(tl.trans(a.to(g.dtype)), g, input_precision="ieee") * scale
            rstate += tl.dot(tl.trans(q), g, input_precision="ieee")
        row_mask = rows[:, None] < N
        rows64 = tl.cast(rows, tl.int64)[:, None]
        tl.atomic_add(DK + rows64 * D + rd[None, :], dk, mask=row_mask & d_mask)
        dv_ptrs = DV_OUT + rows64 * DV + re[None, :]
        tl.store(dv_ptrs, dv.to(DV_OUT.dtype.element_ty), mask=row_mask & (re[None, :] < DV))


def launch_grid(batch: int, heads: int, dv: int, block_e: int) -> tuple[int, int, int]:
    """(batch * heads on x, value-feature blocks on y, 1): x allows 2**31 - 1 sequences;
    y = cdiv(Dv, BLOCK_E) stays far below 65 535 for any feature size."""
    return batch * heads, triton.cdiv(dv, block_e), 1


@torch.library.custom_op("tessera::chunked_linear_attention_fwd", mutates_args=())
def _fwd(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    n, d, dv = q.shape[2], q.shape[3], v.shape[3]
    block_d, block_e = _block_dims(d, dv)
    out = torch.empty_like(v)
    cla_fwd_kernel[launch_grid(*q.shape[:2], dv, block_e)](
        q, k, v, out, n, d, dv, 1.0 / n, causal, BLOCK_N, block_d, block_e
    )
    return out


@_fwd.register_fake
def _(q, k, v, causal):
    return v.new_empty(v.shape)


@torch.library.custom_op("tessera::chunked_linear_attention_bwd", mutates_args=())
def _bwd(
    grad: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    q, k, v, grad = q.contiguous(), k.contiguous(), v.contiguous(), grad.contiguous()
    n, d, dv = q.shape[2], q.shape[3], v.shape[3]
    block_d, block_e = _block_dims(d, dv)
    dq = torch.zeros(q.shape, dtype=torch.float32, device=q.device)
    dk = torch.zeros(k.shape, dtype=torch.float32, device=k.device)
    dvalue = torch.empty_like(v)
    cla_bwd_kernel[launch_grid(*q.shape[:2], dv, block_e)](
        q, k, v, grad, dq, dk, dvalue, n, d, dv, 1.0 / n, causal, BLOCK_N, block_d, block_e
    )
    return dq.to(q.dtype), dk.to(k.dtype), dvalue


@_bwd.register_fake
def _(grad, q, k, v, causal):
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


def _setup_context(ctx, inputs, output):
    q, k, v, causal = inputs
    ctx.save_for_backward(q, k, v)
    ctx.causal = causal


def _backward(ctx, grad):
    q, k, v = ctx.saved_tensors
    dq, dk, dv = _bwd(grad, q, k, v, ctx.causal)
    return dq, dk, dv, None


_fwd.register_autograd(_backward, setup_context=_setup_context)


def chunked_linear_attention_triton(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool
) -> torch.Tensor:
    """Triton path; same contract as ``chunked_linear_attention``."""
    return _fwd(q, k, v, causal)


def _supported(q, k, v, *, causal) -> str | None:
    if q.dtype not in DTYPES:
        return f"dtype {q.dtype} not in {DTYPES}"
    if q.shape[-1] > MAX_HEAD_DIM:
        return f"head dim {q.shape[-1]} > {MAX_HEAD_DIM}"
    return None


CONSTRAINTS: tuple[Constraint, ...] = (_supported,)
