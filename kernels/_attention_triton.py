"""FlashAttention-2 in Triton: forward, backward, dense and varlen, masks and gate.

Algorithm (Dao, 2023, arXiv:2307.08691; structure as in Triton's fused-attention tutorial
and flash-attn's Triton kernel, written anew here):

* Forward: grid (query blocks, heads, batch). Each program keeps its query tile on chip,
  streams key/value tiles, and maintains the online-softmax running max ``m``, sum ``l`` and
  accumulator in fp32 (base-2 exponentials with ``scale * log2(e)`` folded into the scores).
  It stores the output and the base-2 log-sum-exp ``lse = m + log2(l)``; an optional gate is
  applied in the epilogue, in which case the ungated output is stored too for the backward.
* Backward: a preprocess kernel computes ``delta = rowsum(dO * O)`` (and, with a gate,
  ``dO = dY * sigmoid(g)`` and the gate gradient). Then ``dK, dV`` are computed by a grid
  over key blocks looping over queries, and ``dQ`` by a grid over query blocks looping over
  keys, both recomputing ``P = exp2(S - lse)``. No atomics: the backward is deterministic.
* Masking: out-of-range rows/columns, ``key_padding_mask`` and the bottom-right causal mask
  give ``-inf`` scores. A row without a visible key keeps ``l = 0``: its output is 0 and its
  ``lse`` is ``+inf``, so the backward recomputes ``P = 0`` and all its gradients are 0.
* Varlen: ``cu_seqlens`` prologue (each program reads its sequence's start and length and
  returns early past the end); packed ``(total, H, D)`` tensors are addressed with a zero
  batch stride and a row offset.
* Head dims that are not powers of two are padded to ``BLOCK_D`` with masked loads.

Launch configuration: one fixed block config when no GPU driver is active (the interpreter,
or ahead-of-time compilation), autotuning over :data:`FWD_CONFIGS` / :data:`BWD_CONFIGS` only
with a real CUDA driver, because autotune benchmarking queries the driver.

The ops are registered with ``torch.library`` (``tessera::flash_attention_fwd`` / ``_bwd``)
with fake implementations and an autograd formula, so ``torch.compile`` traces them without
graph breaks.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from tessera.kernels.dispatch import interpreter_enabled

LOG2E = math.log2(math.e)


@dataclass(frozen=True)
class BlockConfig:
    """Tile sizes and launch options of one kernel launch."""

    block_m: int
    block_n: int
    num_warps: int
    num_stages: int

    def triton_config(self) -> triton.Config:
        return triton.Config(
            {"BLOCK_M": self.block_m, "BLOCK_N": self.block_n},
            num_warps=self.num_warps,
            num_stages=self.num_stages,
        )


# Candidate configs for autotuning on a GPU; the first one is the fixed config used when no
# driver is active. All are compile-checked for sm_80 and sm_90 by the tests. Tiles whose
# matmul rows are < 64 (BLOCK_M in the forward and dQ, BLOCK_N in dK/dV) would lose sm_90's
# warpgroup MMA (wgmma), so none is offered. fp32 tiles take twice the shared memory, so
# their pipelines are shallower.
FWD_CONFIGS = (
    BlockConfig(64, 64, 4, 2),
    BlockConfig(128, 64, 8, 3),
    BlockConfig(128, 32, 4, 3),
)
BWD_CONFIGS = (
    BlockConfig(64, 64, 4, 2),
    BlockConfig(64, 64, 8, 3),
    BlockConfig(128, 64, 8, 2),
)
FWD_CONFIGS_FP32 = (
    BlockConfig(64, 64, 4, 2),
    BlockConfig(128, 64, 8, 2),
    BlockConfig(128, 32, 4, 2),
)
BWD_CONFIGS_FP32 = (  # dQ; two stages of fp32 tiles at D = 128 overflow an A100
    BlockConfig(64, 64, 4, 1),
    BlockConfig(64, 64, 8, 1),
)
# dK/dV in fp32: 64-row query tiles overflow an A100's shared memory at D = 128 even with
# one stage (192 KB); its MMA rows are the key block, so BLOCK_N = 64 keeps wgmma.
DKDV_CONFIGS_FP32 = (
    BlockConfig(32, 64, 4, 1),
    BlockConfig(32, 64, 8, 1),
)
PREPROCESS_BLOCK_M = 64


def configs_for(kernel: str, dtype: torch.dtype) -> tuple[BlockConfig, ...]:
    """Block configs of the ``"fwd"``, ``"dkdv"`` or ``"dq"`` kernel for inputs of ``dtype``."""
    if dtype == torch.float32:
        return {"fwd": FWD_CONFIGS_FP32, "dkdv": DKDV_CONFIGS_FP32}.get(kernel, BWD_CONFIGS_FP32)
    return FWD_CONFIGS if kernel == "fwd" else BWD_CONFIGS


def block_d(head_dim: int) -> int:
    """Head dim padded to a power of two, at least 16 (the smallest ``tl.dot`` size)."""
    return max(16, triton.next_power_of_2(head_dim))


@triton.jit
def _tile_coords(tile, n_blocks, heads):
    """(block, head, batch) of a flat tile index; head and batch in int64 for offsets."""
    block = tl.cast(tile % n_blocks, tl.int32)
    bh = tl.cast(tile // n_blocks, tl.int64)
    return block, bh % heads, bh // heads


@triton.jit
def _seq_bounds(CuQ, CuK, off_b, seqlen_q, seqlen_k, IS_VARLEN: tl.constexpr):
    """(q_start, q_len, k_start, k_len) of batch element ``off_b``: the varlen prologue."""
    if IS_VARLEN:  # lengths in int32, starts in int64 (they multiply row strides)
        q_first = tl.load(CuQ + off_b)
        q_len = tl.load(CuQ + off_b + 1) - q_first
        k_first = tl.load(CuK + off_b)
        k_len = tl.load(CuK + off_b + 1) - k_first
        q_start = tl.cast(q_first, tl.int64)
        k_start = tl.cast(k_first, tl.int64)
    else:
        q_start = 0
        q_len = seqlen_q
        k_start = 0
        k_len = seqlen_k
    return q_start, q_len, k_start, k_len


@triton.jit
def _visible(rows, cols, q_len, k_len, mask_row, CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr):
    """(BLOCK_M, BLOCK_N) bool: query ``rows`` may attend key ``cols`` (boundary tiles)."""
    ok = (rows[:, None] < q_len) & (cols[None, :] < k_len)
    if HAS_MASK:
        keep = tl.load(mask_row + cols, mask=cols < k_len, other=0)
        ok = ok & (keep != 0)[None, :]
    if CAUSAL:
        ok = ok & (cols[None, :] <= rows[:, None] + (k_len - q_len))
    return ok


@triton.jit
def _load_tile(ptrs, rows, n_rows, d_ok, MASKED: tl.constexpr, EVEN_HEADDIM: tl.constexpr):
    """A (rows, BLOCK_D) tile; full tiles skip the row mask, full head dims every mask."""
    if MASKED:
        return tl.load(ptrs, mask=(rows[:, None] < n_rows) & d_ok[None, :], other=0.0)
    elif EVEN_HEADDIM:
        return tl.load(ptrs)
    else:
        return tl.load(ptrs, mask=d_ok[None, :], other=0.0)


@triton.jit
def _key_ranges(start_m, q_len, k_len, CAUSAL: tl.constexpr, EVEN_N: tl.constexpr,
                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):  # fmt: skip
    """(full_end, hi) for the key loop of query block ``start_m``.

    Key tiles in [0, full_end) are in range and, when causal, entirely below the diagonal of
    the block's first row: no mask. Tiles in [full_end, hi) need the boundary mask; keys past
    ``hi`` are invisible to the whole block.
    """
    if CAUSAL:
        first_row = start_m * BLOCK_M + (k_len - q_len)  # diagonal of the block's first row
        hi = tl.minimum(k_len, first_row + BLOCK_M)
        full_end = tl.maximum(tl.minimum(first_row + 1, k_len) // BLOCK_N * BLOCK_N, 0)
    elif EVEN_N:
        hi = k_len
        full_end = k_len
    else:
        hi = k_len
        full_end = k_len // BLOCK_N * BLOCK_N
    return full_end, hi


@triton.jit
def _fwd_inner(
    acc, l_i, m_i, q, K_rows, V_rows, mask_row, rows, offs_n, offs_d, d_ok, lo, hi,
    stride_kn, stride_vn, q_len, k_len, qk_scale,
    MASKED: tl.constexpr, CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr,
    EVEN_HEADDIM: tl.constexpr, PRECISION: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """Online-softmax update over key tiles [lo, hi); ``K_rows``/``V_rows`` point at key 0."""
    for start_n in range(lo, hi, BLOCK_N):
        cols = start_n + offs_n
        cols64 = tl.cast(cols, tl.int64)[:, None]
        k = _load_tile(K_rows + cols64 * stride_kn + offs_d[None, :], cols, k_len, d_ok,
                       MASKED, EVEN_HEADDIM)  # fmt: skip
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale  # (BLOCK_M, BLOCK_N)
        if MASKED:
            ok = _visible(rows, cols, q_len, k_len, mask_row, CAUSAL, HAS_MASK)
            s = tl.where(ok, s, float("-inf"))
        elif HAS_MASK:
            s = tl.where((tl.load(mask_row + cols) != 0)[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # all -inf so far: no NaN
        p = tl.exp2(s - m_safe[:, None])
        alpha = tl.exp2(m_i - m_safe)
        l_i = l_i * alpha + tl.sum(p, 1)
        v = _load_tile(V_rows + cols64 * stride_vn + offs_d[None, :], cols, k_len, d_ok,
                       MASKED, EVEN_HEADDIM)  # fmt: skip
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def _attn_fwd(
    Q, K, V, G, Mask, CuQ, CuK, Out, OutUngated, Lse,
    stride_qb, stride_qh, stride_qm,
    stride_kb, stride_kh, stride_kn,
    stride_vb, stride_vh, stride_vn,
    stride_ob, stride_oh, stride_om,
    stride_lb, stride_lh, stride_mb,
    seqlen_q, seqlen_k, head_dim, heads, batch, qk_scale,
    CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr, HAS_GATE: tl.constexpr,
    IS_VARLEN: tl.constexpr, EVEN_N: tl.constexpr, EVEN_HEADDIM: tl.constexpr,
    PRECISION: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
):  # fmt: skip
    n_blocks = tl.cdiv(seqlen_q, BLOCK_M)
    num_tiles = tl.cast(n_blocks, tl.int64) * heads * batch
    for tile in range(tl.program_id(0), num_tiles, tl.num_programs(0)):
        start_m, off_h, off_b = _tile_coords(tile, n_blocks, heads)
        q_start, q_len, k_start, k_len = _seq_bounds(CuQ, CuK, off_b, seqlen_q, seqlen_k, IS_VARLEN)
        if start_m * BLOCK_M < q_len:
            rows = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
            offs_n = tl.arange(0, BLOCK_N)
            offs_d = tl.arange(0, BLOCK_D)
            d_ok = offs_d < head_dim
            row_ok = rows < q_len
            rows64 = tl.cast(q_start + rows, tl.int64)[:, None]
            q_ptrs = Q + off_b * stride_qb + off_h * stride_qh + rows64 * stride_qm
            q = tl.load(q_ptrs + offs_d[None, :], mask=row_ok[:, None] & d_ok[None, :],
                        other=0.0)  # fmt: skip
            K_rows = K + off_b * stride_kb + off_h * stride_kh + k_start * stride_kn
            V_rows = V + off_b * stride_vb + off_h * stride_vh + k_start * stride_vn
            mask_row = Mask + off_b * stride_mb

            m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
            l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
            acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
            full_end, hi = _key_ranges(start_m, q_len, k_len, CAUSAL, EVEN_N, BLOCK_M, BLOCK_N)
            acc, l_i, m_i = _fwd_inner(
                acc, l_i, m_i, q, K_rows, V_rows, mask_row, rows, offs_n, offs_d, d_ok,
                0, full_end, stride_kn, stride_vn, q_len, k_len, qk_scale,
                False, CAUSAL, HAS_MASK, EVEN_HEADDIM, PRECISION, BLOCK_N,
            )  # fmt: skip
            if CAUSAL or not EVEN_N:  # boundary tiles: causal diagonal, last partial tile
                acc, l_i, m_i = _fwd_inner(
                    acc, l_i, m_i, q, K_rows, V_rows, mask_row, rows, offs_n, offs_d, d_ok,
                    full_end, hi, stride_kn, stride_vn, q_len, k_len, qk_scale,
                    True, CAUSAL, HAS_MASK, EVEN_HEADDIM, PRECISION, BLOCK_N,
                )  # fmt: skip

            has_key = l_i > 0.0
            acc = acc / tl.where(has_key, l_i, 1.0)[:, None]
            lse = tl.where(has_key, m_i + tl.log2(tl.where(has_key, l_i, 1.0)), float("inf"))
            l_ptrs = Lse + off_b * stride_lb + off_h * stride_lh + q_start + rows
            tl.store(l_ptrs, lse, mask=row_ok)
            o_off = off_b * stride_ob + off_h * stride_oh + rows64 * stride_om + offs_d[None, :]
            o_mask = row_ok[:, None] & d_ok[None, :]
            if HAS_GATE:
                tl.store(OutUngated + o_off, acc.to(OutUngated.dtype.element_ty), mask=o_mask)
                g = tl.load(G + o_off, mask=o_mask, other=0.0).to(tl.float32)
                acc = acc * tl.sigmoid(g)
            tl.store(Out + o_off, acc.to(Out.dtype.element_ty), mask=o_mask)


@triton.jit
def _attn_bwd_preprocess(
    DY, Out, G, DO, DG, Delta, CuQ,
    stride_ob, stride_oh, stride_om, stride_lb, stride_lh,
    seqlen_q, head_dim, heads, batch,
    HAS_GATE: tl.constexpr, IS_VARLEN: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_D: tl.constexpr,
):  # fmt: skip
    """delta = rowsum(dO * O); with a gate also dO = dY * sigmoid(g) and dG."""
    n_blocks = tl.cdiv(seqlen_q, BLOCK_M)
    num_tiles = tl.cast(n_blocks, tl.int64) * heads * batch
    for tile in range(tl.program_id(0), num_tiles, tl.num_programs(0)):
        start_m, off_h, off_b = _tile_coords(tile, n_blocks, heads)
        q_start, q_len, _, _ = _seq_bounds(CuQ, CuQ, off_b, seqlen_q, seqlen_q, IS_VARLEN)
        if start_m * BLOCK_M < q_len:
            rows = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
            offs_d = tl.arange(0, BLOCK_D)
            row_ok = rows < q_len
            mask = row_ok[:, None] & (offs_d < head_dim)[None, :]
            rows64 = tl.cast(q_start + rows, tl.int64)[:, None]
            off = off_b * stride_ob + off_h * stride_oh + rows64 * stride_om + offs_d[None, :]
            o = tl.load(Out + off, mask=mask, other=0.0).to(tl.float32)
            do = tl.load(DY + off, mask=mask, other=0.0).to(tl.float32)
            if HAS_GATE:
                sig = tl.sigmoid(tl.load(G + off, mask=mask, other=0.0).to(tl.float32))
                tl.store(DG + off, (do * o * sig * (1.0 - sig)).to(DG.dtype.element_ty),
                         mask=mask)  # fmt: skip
                do = do * sig
                tl.store(DO + off, do.to(DO.dtype.element_ty), mask=mask)
            delta = tl.sum(do * o, 1)
            d_ptrs = Delta + off_b * stride_lb + off_h * stride_lh + q_start + rows
            tl.store(d_ptrs, delta, mask=row_ok)


@triton.jit
def _dkdv_inner(
    dk, dv, k, v, Q_rows, DO_rows, lse_row, delta_row, mask_row, cols, offs_m, offs_d, d_ok,
    lo, hi, stride_qm, q_len, k_len, qk_scale,
    MASKED: tl.constexpr, CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr,
    EVEN_HEADDIM: tl.constexpr, PRECISION: tl.constexpr, BLOCK_M: tl.constexpr,
):  # fmt: skip
    """dK, dV contributions of query tiles [lo, hi); ``*_rows`` point at query 0."""
    for start_m in range(lo, hi, BLOCK_M):
        rows = start_m + offs_m
        off = tl.cast(rows, tl.int64)[:, None] * stride_qm + offs_d[None, :]
        q = _load_tile(Q_rows + off, rows, q_len, d_ok, MASKED, EVEN_HEADDIM)
        do = _load_tile(DO_rows + off, rows, q_len, d_ok, MASKED, EVEN_HEADDIM)
        if MASKED:
            lse = tl.load(lse_row + rows, mask=rows < q_len, other=float("inf"))
            delta = tl.load(delta_row + rows, mask=rows < q_len, other=0.0)
        else:
            lse = tl.load(lse_row + rows)
            delta = tl.load(delta_row + rows)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale
        p = tl.exp2(s - lse[:, None])  # (BLOCK_M, BLOCK_N)
        if MASKED:
            p = tl.where(_visible(rows, cols, q_len, k_len, mask_row, CAUSAL, HAS_MASK), p, 0.0)
        elif HAS_MASK:
            p = tl.where((tl.load(mask_row + cols, mask=cols < k_len, other=0) != 0)[None, :],
                         p, 0.0)  # fmt: skip
        dv += tl.dot(tl.trans(p.to(do.dtype)), do, input_precision=PRECISION)
        dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
        ds = p * (dp - delta[:, None])
        dk += tl.dot(tl.trans(ds.to(q.dtype)), q, input_precision=PRECISION)
    return dk, dv


@triton.jit
def _attn_bwd_dkdv(
    Q, K, V, DO, Mask, CuQ, CuK, DK, DV, Lse, Delta,
    stride_qb, stride_qh, stride_qm,
    stride_kb, stride_kh, stride_kn,
    stride_lb, stride_lh, stride_mb,
    seqlen_q, seqlen_k, head_dim, heads, batch, qk_scale, sm_scale,
    CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr, IS_VARLEN: tl.constexpr,
    EVEN_M: tl.constexpr, EVEN_HEADDIM: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    """dK, dV of one key block; Q/dO share strides, K/V/dK/dV share strides.

    Query tiles are visited in three ranges: the causal diagonal band (masked), the full
    tiles entirely below it (unmasked) and the last partial query tile (masked).
    """
    n_blocks = tl.cdiv(seqlen_k, BLOCK_N)
    num_tiles = tl.cast(n_blocks, tl.int64) * heads * batch
    for tile in range(tl.program_id(0), num_tiles, tl.num_programs(0)):
        start_n, off_h, off_b = _tile_coords(tile, n_blocks, heads)
        q_start, q_len, k_start, k_len = _seq_bounds(CuQ, CuK, off_b, seqlen_q, seqlen_k, IS_VARLEN)
        if start_n * BLOCK_N < k_len:
            cols = start_n * BLOCK_N + tl.arange(0, BLOCK_N)
            offs_m = tl.arange(0, BLOCK_M)
            offs_d = tl.arange(0, BLOCK_D)
            d_ok = offs_d < head_dim
            kv_mask = (cols[:, None] < k_len) & d_ok[None, :]
            cols64 = tl.cast(k_start + cols, tl.int64)[:, None]
            kv_off = off_b * stride_kb + off_h * stride_kh + cols64 * stride_kn + offs_d[None, :]
            k = tl.load(K + kv_off, mask=kv_mask, other=0.0)
            v = tl.load(V + kv_off, mask=kv_mask, other=0.0)
            q_off = off_b * stride_qb + off_h * stride_qh + q_start * stride_qm
            l_off = off_b * stride_lb + off_h * stride_lh + q_start
            mask_row = Mask + off_b * stride_mb

            dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
            dv = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
            full_end = q_len if EVEN_M else q_len // BLOCK_M * BLOCK_M
            band_end = 0
            if CAUSAL:  # queries above this block's first diagonal see none of its keys
                offset = k_len - q_len
                lo = tl.maximum(start_n * BLOCK_N - offset, 0) // BLOCK_M * BLOCK_M
                band_end = tl.maximum(
                    lo,
                    tl.cdiv(start_n * BLOCK_N + BLOCK_N - 1 - offset, BLOCK_M) * BLOCK_M,
                )
                dk, dv = _dkdv_inner(
                    dk, dv, k, v, Q + q_off, DO + q_off, Lse + l_off, Delta + l_off, mask_row,
                    cols, offs_m, offs_d, d_ok, lo, tl.minimum(band_end, q_len), stride_qm,
                    q_len, k_len, qk_scale,
                    True, CAUSAL, HAS_MASK, EVEN_HEADDIM, PRECISION, BLOCK_M,
                )  # fmt: skip
            dk, dv = _dkdv_inner(
                dk, dv, k, v, Q + q_off, DO + q_off, Lse + l_off, Delta + l_off, mask_row,
                cols, offs_m, offs_d, d_ok, band_end, full_end, stride_qm, q_len, k_len,
                qk_scale, False, CAUSAL, HAS_MASK, EVEN_HEADDIM, PRECISION, BLOCK_M,
            )  # fmt: skip
            if not EVEN_M:
                dk, dv = _dkdv_inner(
                    dk, dv, k, v, Q + q_off, DO + q_off, Lse + l_off, Delta + l_off, mask_row,
                    cols, offs_m, offs_d, d_ok, tl.maximum(band_end, full_end), q_len,
                    stride_qm, q_len, k_len, qk_scale,
                    True, CAUSAL, HAS_MASK, EVEN_HEADDIM, PRECISION, BLOCK_M,
                )  # fmt: skip
            tl.store(DK + kv_off, (dk * sm_scale).to(DK.dtype.element_ty), mask=kv_mask)
            tl.store(DV + kv_off, dv.to(DV.dtype.element_ty), mask=kv_mask)


@triton.jit
def _dq_inner(
    dq, q, do, lse, delta, K_rows, V_rows, mask_row, rows, offs_n, offs_d, d_ok, lo, hi,
    stride_kn, q_len, k_len, qk_scale,
    MASKED: tl.constexpr, CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr,
    EVEN_HEADDIM: tl.constexpr, PRECISION: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """dQ contributions of key tiles [lo, hi); ``K_rows``/``V_rows`` point at key 0."""
    for start_n in range(lo, hi, BLOCK_N):
        cols = start_n + offs_n
        off = tl.cast(cols, tl.int64)[:, None] * stride_kn + offs_d[None, :]
        k = _load_tile(K_rows + off, cols, k_len, d_ok, MASKED, EVEN_HEADDIM)
        v = _load_tile(V_rows + off, cols, k_len, d_ok, MASKED, EVEN_HEADDIM)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale
        p = tl.exp2(s - lse[:, None])
        if MASKED:
            p = tl.where(_visible(rows, cols, q_len, k_len, mask_row, CAUSAL, HAS_MASK), p, 0.0)
        elif HAS_MASK:
            p = tl.where((tl.load(mask_row + cols) != 0)[None, :], p, 0.0)
        dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
        ds = p * (dp - delta[:, None])
        dq += tl.dot(ds.to(k.dtype), k, input_precision=PRECISION)
    return dq


@triton.jit
def _attn_bwd_dq(
    Q, K, V, DO, Mask, CuQ, CuK, DQ, Lse, Delta,
    stride_qb, stride_qh, stride_qm,
    stride_kb, stride_kh, stride_kn,
    stride_lb, stride_lh, stride_mb,
    seqlen_q, seqlen_k, head_dim, heads, batch, qk_scale, sm_scale,
    CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr, IS_VARLEN: tl.constexpr,
    EVEN_N: tl.constexpr, EVEN_HEADDIM: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    """dQ of one query block; Q/dO/dQ share strides, K/V share strides."""
    n_blocks = tl.cdiv(seqlen_q, BLOCK_M)
    num_tiles = tl.cast(n_blocks, tl.int64) * heads * batch
    for tile in range(tl.program_id(0), num_tiles, tl.num_programs(0)):
        start_m, off_h, off_b = _tile_coords(tile, n_blocks, heads)
        q_start, q_len, k_start, k_len = _seq_bounds(CuQ, CuK, off_b, seqlen_q, seqlen_k, IS_VARLEN)
        if start_m * BLOCK_M < q_len:
            rows = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
            offs_n = tl.arange(0, BLOCK_N)
            offs_d = tl.arange(0, BLOCK_D)
            d_ok = offs_d < head_dim
            row_ok = rows < q_len
            q_mask = row_ok[:, None] & d_ok[None, :]
            rows64 = tl.cast(q_start + rows, tl.int64)[:, None]
            q_off = off_b * stride_qb + off_h * stride_qh + rows64 * stride_qm + offs_d[None, :]
            q = tl.load(Q + q_off, mask=q_mask, other=0.0)
            do = tl.load(DO + q_off, mask=q_mask, other=0.0)
            l_ptrs = off_b * stride_lb + off_h * stride_lh + q_start + rows
            lse = tl.load(Lse + l_ptrs, mask=row_ok, other=float("inf"))
            delta = tl.load(Delta + l_ptrs, mask=row_ok, other=0.0)
            kv_rows = off_b * stride_kb + off_h * stride_kh + k_start * stride_kn
            mask_row = Mask + off_b * stride_mb

            dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
            full_end, hi = _key_ranges(start_m, q_len, k_len, CAUSAL, EVEN_N, BLOCK_M, BLOCK_N)
            dq = _dq_inner(
                dq, q, do, lse, delta, K + kv_rows, V + kv_rows, mask_row, rows, offs_n, offs_d,
                d_ok, 0, full_end, stride_kn, q_len, k_len, qk_scale,
                False, CAUSAL, HAS_MASK, EVEN_HEADDIM, PRECISION, BLOCK_N,
            )  # fmt: skip
            if CAUSAL or not EVEN_N:
                dq = _dq_inner(
                    dq, q, do, lse, delta, K + kv_rows, V + kv_rows, mask_row, rows, offs_n,
                    offs_d, d_ok, full_end, hi, stride_kn, q_len, k_len, qk_scale,
                    True, CAUSAL, HAS_MASK, EVEN_HEADDIM, PRECISION, BLOCK_N,
                )  # fmt: skip
            tl.store(DQ + q_off, (dq * sm_scale).to(DQ.dtype.element_ty), mask=q_mask)


# ----------------------------------------------------------------------------- launching


# CUDA launch limits: grid x < 2**31, y and z <= 65535. Every kernel here launches a 1-D
# grid; when there are more tiles than grid x allows, each program loops over tiles.
MAX_GRID_X = 2**31 - 1
# Autotuning keys bucket sequence lengths to the next power of two, at least this (shorter
# sequences fit in one or two tiles of every config).
MIN_LENGTH_BUCKET = 128


def launch_grid(n_blocks: int, heads: int, batch: int) -> tuple[int, int, int]:
    """Grid of one attention launch over ``n_blocks`` row blocks of ``batch * heads`` sequences.

    All tiles go on grid x, block index fastest (the tiles of one (batch, head) run together
    and share its keys in L2); y and z stay 1 whatever the batch, so any number of sequences
    can be launched. Beyond ``MAX_GRID_X`` tiles the programs loop with a grid-size stride.
    """
    return max(1, min(n_blocks * heads * batch, MAX_GRID_X)), 1, 1


def length_bucket(n: int) -> int:
    """Autotuning bucket of a sequence length: next power of two, at least MIN_LENGTH_BUCKET."""
    return max(MIN_LENGTH_BUCKET, triton.next_power_of_2(n))


def dot_precision(dtype: torch.dtype) -> str:
    """``tl.dot`` precision: TF32 tensor cores for fp32 when torch allows TF32 matmuls
    (``torch.backends.cuda.matmul.allow_tf32``), exact IEEE fp32 otherwise; 16-bit inputs
    always use tensor cores."""
    if dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32:
        return "tf32"
    return "ieee"


# Flags derived from the arguments and the block config (FlashAttention-2's Triton kernel
# uses the same): full row / key blocks and an unpadded head dim drop masks from the main loop.
_EVEN_FLAGS = {
    "EVEN_M": lambda a: not a["IS_VARLEN"] and a["seqlen_q"] % a["BLOCK_M"] == 0,
    "EVEN_N": lambda a: not a["IS_VARLEN"] and a["seqlen_k"] % a["BLOCK_N"] == 0,
    "EVEN_HEADDIM": lambda a: a["head_dim"] == a["BLOCK_D"],
}

# Replaced by a fake timer in the tests (there is no GPU to benchmark on); None = Triton's.
_DO_BENCH = None


def _use_autotune() -> bool:
    """Autotune only with a real CUDA driver: benchmarking configs needs one."""
    return not interpreter_enabled() and torch.cuda.is_available()


@functools.cache
def _specialised(kernel):
    """``kernel`` with the EVEN_* flags it takes computed per launch and block config."""
    names = set(kernel.arg_names)
    return triton.heuristics({k: f for k, f in _EVEN_FLAGS.items() if k in names})(kernel)


@functools.cache
def _autotuned(kernel, configs: tuple[BlockConfig, ...], tuning_key: tuple):
    """One autotuner per tuning key; each tunes once per argument dtype combination."""
    return triton.autotune([c.triton_config() for c in configs], key=[], do_bench=_DO_BENCH)(
        _specialised(kernel)
    )


def tuning_key(seqlen_q: int, seqlen_k: int, head_dim: int, flags: dict) -> tuple:
    """What makes a tuning result reusable: length buckets, head dim and the kernel-changing
    flags (causal, mask, gate, varlen, dot precision). Dtypes are added by the autotuner."""
    return (
        length_bucket(seqlen_q),
        length_bucket(seqlen_k),
        head_dim,
        *sorted(flags.items()),
    )


def _launch(kernel, configs, grid, *args, seqlen_q, seqlen_k, head_dim, **constexprs) -> None:
    """Launch with autotuning on a GPU, else with the first (fixed) config.

    ``grid(block_m, block_n)`` gives the launch grid for a config.
    """
    if _use_autotune():
        key = tuning_key(seqlen_q, seqlen_k, head_dim, constexprs)
        _autotuned(kernel, configs, key)[lambda meta: grid(meta["BLOCK_M"], meta["BLOCK_N"])](
            *args, **constexprs
        )
        return
    cfg = configs[0]
    _specialised(kernel)[grid(cfg.block_m, cfg.block_n)](
        *args,
        BLOCK_M=cfg.block_m,
        BLOCK_N=cfg.block_n,
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages,
        **constexprs,
    )


def _rows_last(t: torch.Tensor) -> torch.Tensor:
    """The kernels need unit stride along the head dim."""
    return t if t.stride(-1) == 1 else t.contiguous()


def _strides(t: torch.Tensor, varlen: bool) -> tuple[int, int, int]:
    """(batch, head, row) strides; packed varlen tensors (total, H, D) have no batch stride."""
    return (0, t.stride(1), t.stride(0)) if varlen else (t.stride(0), t.stride(1), t.stride(2))


def _geometry(q, k, cu_seqlens_q, max_seqlen_q, max_seqlen_k):
    """(batch, heads, grid rows of q, grid rows of k, lse shape)."""
    if cu_seqlens_q is not None:
        return (
            cu_seqlens_q.shape[0] - 1,
            q.shape[1],
            max_seqlen_q,
            max_seqlen_k,
            q.shape[1::-1],
        )
    b, h, nq, _ = q.shape
    return b, h, nq, k.shape[2], (b, h, nq)


def _alloc_forward(q, gate, lse_shape):
    out = q.new_empty(q.shape)
    ungated = q.new_empty(q.shape) if gate is not None else q.new_empty(0)
    return out, ungated, q.new_empty(lse_shape, dtype=torch.float32)


@torch.library.custom_op("tessera::flash_attention_fwd", mutates_args=())
def flash_attention_fwd(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
    gate: torch.Tensor | None,
    cu_seqlens_q: torch.Tensor | None,
    cu_seqlens_k: torch.Tensor | None,
    max_seqlen_q: int,
    max_seqlen_k: int,
    causal: bool,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward launch. Returns (out, ungated out or empty, base-2 lse in fp32).

    Dense: q (B, H, Nq, D), k/v (B, H, Nk, D), lse (B, H, Nq). Varlen (``cu_seqlens_*``
    given): q (total_q, H, D), k/v (total_k, H, D), lse (H, total_q).
    """
    varlen = cu_seqlens_q is not None
    q, k, v = _rows_last(q), _rows_last(k), _rows_last(v)
    batch, heads, rows_q, rows_k, lse_shape = _geometry(
        q, k, cu_seqlens_q, max_seqlen_q, max_seqlen_k
    )
    if gate is not None:
        gate = gate.contiguous()  # shares the output's strides
    out, ungated, lse = _alloc_forward(q, gate, lse_shape)
    mask = key_padding_mask.contiguous().view(torch.uint8) if key_padding_mask is not None else q
    lse_b, lse_h = (0, lse.stride(0)) if varlen else (lse.stride(0), lse.stride(1))
    _launch(
        _attn_fwd,
        configs_for("fwd", q.dtype),
        lambda bm, bn: launch_grid(triton.cdiv(rows_q, bm), heads, batch),
        q, k, v,
        gate if gate is not None else q,
        mask,
        cu_seqlens_q if varlen else q,
        cu_seqlens_k if varlen else q,
        out, ungated if gate is not None else out, lse,
        *_strides(q, varlen), *_strides(k, varlen), *_strides(v, varlen), *_strides(out, varlen),
        lse_b, lse_h, mask.stride(0) if key_padding_mask is not None else 0,
        rows_q, rows_k, q.shape[-1], heads, batch, scale * LOG2E,
        seqlen_q=rows_q, seqlen_k=rows_k, head_dim=q.shape[-1],
        CAUSAL=causal,
        HAS_MASK=key_padding_mask is not None,
        HAS_GATE=gate is not None,
        IS_VARLEN=varlen,
        PRECISION=dot_precision(q.dtype),
        BLOCK_D=block_d(q.shape[-1]),
    )  # fmt: skip
    return out, ungated, lse


@flash_attention_fwd.register_fake
def _(q, k, v, key_padding_mask, gate, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
      causal, scale):  # fmt: skip
    lse_shape = _geometry(q, k, cu_seqlens_q, max_seqlen_q, max_seqlen_k)[4]
    return _alloc_forward(q, gate, lse_shape)


@torch.library.custom_op("tessera::flash_attention_bwd", mutates_args=())
def flash_attention_bwd(
    grad_out: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    ungated: torch.Tensor,
    lse: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
    gate: torch.Tensor | None,
    cu_seqlens_q: torch.Tensor | None,
    cu_seqlens_k: torch.Tensor | None,
    max_seqlen_q: int,
    max_seqlen_k: int,
    causal: bool,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Backward launches. Returns (dq, dk, dv, dgate or empty)."""
    varlen = cu_seqlens_q is not None
    # One stride set for q/dO/dQ and one for k/v/dK/dV.
    q, k, v, grad_out = (
        q.contiguous(),
        k.contiguous(),
        v.contiguous(),
        grad_out.contiguous(),
    )
    batch, heads, rows_q, rows_k, _ = _geometry(q, k, cu_seqlens_q, max_seqlen_q, max_seqlen_k)
    head_dim, bd = q.shape[-1], block_d(q.shape[-1])
    cu_q = cu_seqlens_q if varlen else q
    cu_k = cu_seqlens_k if varlen else q
    lse_b, lse_h = (0, lse.stride(0)) if varlen else (lse.stride(0), lse.stride(1))
    delta = torch.empty_like(lse)
    if gate is not None:
        gate = gate.contiguous()
        grad_o, grad_gate = torch.empty_like(q), torch.empty_like(q)
    else:
        grad_o, grad_gate = grad_out, q.new_empty(0)
    _attn_bwd_preprocess[launch_grid(triton.cdiv(rows_q, PREPROCESS_BLOCK_M), heads, batch)](
        grad_out, ungated if gate is not None else out,
        gate if gate is not None else q, grad_o, grad_gate if gate is not None else q,
        delta, cu_q, *_strides(q, varlen), lse_b, lse_h, rows_q, head_dim, heads, batch,
        HAS_GATE=gate is not None, IS_VARLEN=varlen, BLOCK_M=PREPROCESS_BLOCK_M, BLOCK_D=bd,
    )  # fmt: skip

    mask = key_padding_mask.contiguous().view(torch.uint8) if key_padding_mask is not None else q
    common = (
        *_strides(q, varlen), *_strides(k, varlen),
        lse_b, lse_h, mask.stride(0) if key_padding_mask is not None else 0,
        rows_q, rows_k, head_dim, heads, batch, scale * LOG2E, scale,
    )  # fmt: skip
    flags = {
        "CAUSAL": causal, "HAS_MASK": key_padding_mask is not None, "IS_VARLEN": varlen,
        "PRECISION": dot_precision(q.dtype), "BLOCK_D": bd,
        "seqlen_q": rows_q, "seqlen_k": rows_k, "head_dim": head_dim,
    }  # fmt: skip
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    _launch(
        _attn_bwd_dkdv,
        configs_for("dkdv", q.dtype),
        lambda bm, bn: launch_grid(triton.cdiv(rows_k, bn), heads, batch),
        q, k, v, grad_o, mask, cu_q, cu_k, dk, dv, lse, delta, *common, **flags,
    )  # fmt: skip
    _launch(
        _attn_bwd_dq,
        configs_for("dq", q.dtype),
        lambda bm, bn: launch_grid(triton.cdiv(rows_q, bm), heads, batch),
        q, k, v, grad_o, mask, cu_q, cu_k, dq, lse, delta, *common, **flags,
    )  # fmt: skip
    return dq, dk, dv, grad_gate


@flash_attention_bwd.register_fake
def _(grad_out, q, k, v, out, ungated, lse, key_padding_mask, gate, cu_seqlens_q, cu_seqlens_k,
      max_seqlen_q, max_seqlen_k, causal, scale):  # fmt: skip
    grad_gate = q.new_empty(q.shape) if gate is not None else q.new_empty(0)
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape), grad_gate


def _setup_context(ctx, inputs, output) -> None:
    q, k, v, mask, gate, cu_q, cu_k, max_q, max_k, causal, scale = inputs
    out, ungated, lse = output
    ctx.save_for_backward(q, k, v, out, ungated, lse, mask, gate, cu_q, cu_k)
    ctx.static = (max_q, max_k, causal, scale)


def _backward(ctx, grad_out, _grad_ungated, _grad_lse):
    q, k, v, out, ungated, lse, mask, gate, cu_q, cu_k = ctx.saved_tensors
    dq, dk, dv, dgate = flash_attention_bwd(
        grad_out, q, k, v, out, ungated, lse, mask, gate, cu_q, cu_k, *ctx.static
    )
    return (
        dq,
        dk,
        dv,
        None,
        dgate if gate is not None else None,
        None,
        None,
        None,
        None,
        None,
        None,
    )


flash_attention_fwd.register_autograd(_backward, setup_context=_setup_context)


# ----------------------------------------------------------------------------- dispatch glue

_TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
MAX_HEAD_DIM = 128


def supports(q: torch.Tensor, *_args) -> str | None:
    """Constraint for the dispatch registry: None if the Triton kernels can run ``q``."""
    if q.dtype not in _TRITON_DTYPES:
        return f"dtype {q.dtype} not in fp16/bf16/fp32"
    if q.shape[-1] > MAX_HEAD_DIM:
        return f"head dim {q.shape[-1]} > {MAX_HEAD_DIM}"
    if q.dtype == torch.bfloat16 and not q.is_cuda:
        return "bf16 tl.dot is wrong in the Triton interpreter (GPU only)"
    return None


def attention_triton(q, k, v, key_padding_mask, gate, causal, scale) -> torch.Tensor:
    """Triton backend of :func:`tessera.kernels.attention` (same positional arguments)."""
    nq, nk = q.shape[2], k.shape[2]
    out, _, _ = flash_attention_fwd(
        q, k, v, key_padding_mask, gate, None, None, nq, nk, causal, scale
    )
    return out


def varlen_attention_triton(
    q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, causal, scale
) -> torch.Tensor:
    """Triton backend of :func:`tessera.kernels.varlen_attention`."""
    out, _, _ = flash_attention_fwd(
        q,
        k,
        v,
        None,
        None,
        cu_seqlens_q,
        cu_seqlens_k,
        max_seqlen_q,
        max_seqlen_k,
        causal,
        scale,
    )
    return out
