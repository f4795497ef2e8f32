"""Scattered linear attention: per-window linear attention over a ragged voxel sequence.

ScatterFormer (He et al., ECCV 2024, arXiv:2401.00912; ``skyhehe123/ScatterFormer``) sorts voxels by
window and runs linear attention inside every window without padding or set splitting. For
window w and each head, with phi the feature map:

    KV_w = sum_{n in w} phi(k_n)^T v_n        (D, Dv)
    s_w  = sum_{n in w} phi(k_n)              (D,)
    y_n  = phi(q_n) KV_w / (phi(q_n) . s_w + eps)

Shapes: q, k (N, H, D); v (N, H, Dv); offsets (W + 1,) integer with offsets[0] = 0,
offsets[-1] = N, non-decreasing (empty windows allowed); output (N, H, Dv).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tessera.kernels.dispatch import TRITON_AVAILABLE, KernelOp

if TRITON_AVAILABLE:
    from tessera.kernels import _scatter_linear_attention_triton as _triton

SCATTER_LINEAR_ATTENTION = KernelOp("scatter_linear_attention")
FEATURE_MAPS = ("relu", "elu1")
# Rows per step of the PyTorch path; bounds its (rows, H, D, Dv) temporaries.
_ROWS_PER_STEP = 2048


def feature_map_fn(x: torch.Tensor, feature_map: str) -> torch.Tensor:
    """phi: ``relu`` or ``elu1`` (elu(x) + 1, Katharopoulos et al., 2020)."""
    if feature_map == "relu":
        return F.relu(x)
    return F.elu(x) + 1


def _check_inputs(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, offsets: torch.Tensor, feature_map: str
) -> None:
    if q.dim() != 3:
        raise ValueError(f"q must be (N, H, D), got shape {tuple(q.shape)}")
    if k.shape != q.shape:
        raise ValueError(f"k must match q {tuple(q.shape)}, got shape {tuple(k.shape)}")
    if v.dim() != 3 or v.shape[:2] != q.shape[:2]:
        raise ValueError(f"v must be (N, H, Dv) with N, H of q, got shape {tuple(v.shape)}")
    if not (q.dtype == k.dtype == v.dtype) or not q.is_floating_point():
        raise ValueError(f"q, k, v must share a float dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if offsets.dim() != 1 or offsets.numel() < 1 or offsets.is_floating_point():
        raise ValueError(
            f"offsets must be a 1-D integer tensor (W + 1,), got {offsets.dtype} "
            f"shape {tuple(offsets.shape)}"
        )
    if feature_map not in FEATURE_MAPS:
        raise ValueError(f"feature_map must be one of {FEATURE_MAPS}, got {feature_map!r}")
    first, last = int(offsets[0]), int(offsets[-1])
    if first != 0 or last != q.shape[0] or bool((offsets[1:] < offsets[:-1]).any()):
        raise ValueError(
            f"offsets must start at 0, end at N={q.shape[0]} and be non-decreasing "
            f"(got first={first}, last={last})"
        )


def segment_ids(offsets: torch.Tensor, n: int) -> torch.Tensor:
    """(N,) window index of every row, from (W + 1,) offsets."""
    counts = offsets[1:] - offsets[:-1]
    windows = torch.arange(counts.numel(), device=offsets.device)
    return torch.repeat_interleave(windows, counts, output_size=n)


def _segment_outer(a: torch.Tensor, b: torch.Tensor, seg: torch.Tensor, w: int) -> torch.Tensor:
    """(W, H, Da, Db) = per-window sum of a_n^T b_n; a (N, H, Da), b (N, H, Db)."""
    out = a.new_zeros(w, a.shape[1], a.shape[2], b.shape[2])
    for i in range(0, a.shape[0], _ROWS_PER_STEP):
        rows = slice(i, i + _ROWS_PER_STEP)
        out.index_add_(0, seg[rows], a[rows, :, :, None] * b[rows, :, None, :])
    return out


def _segment_apply(a: torch.Tensor, m: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
    """(N, H, Db) = a_n @ m[window(n)]; a (N, H, Da), m (W, H, Da, Db)."""
    out = a.new_empty(a.shape[0], a.shape[1], m.shape[3])
    for i in range(0, a.shape[0], _ROWS_PER_STEP):
        rows = slice(i, i + _ROWS_PER_STEP)
        out[rows] = torch.matmul(a[rows, :, None, :], m[seg[rows]]).squeeze(2)
    return out


def _segment_sum(a: torch.Tensor, seg: torch.Tensor, w: int) -> torch.Tensor:
    return a.new_zeros(w, *a.shape[1:]).index_add_(0, seg, a)


class _SegmentLinearAttention(torch.autograd.Function):
    """Core on feature-mapped inputs; backward recomputes KV_w instead of saving per-row copies."""

    @staticmethod
    def forward(ctx, fq, fk, v, seg, n_windows: int, eps: float):
        kv = _segment_outer(fk, v, seg, n_windows)  # (W, H, D, Dv)
        s = _segment_sum(fk, seg, n_windows)  # (W, H, D)
        den = (fq * s[seg]).sum(-1, keepdim=True) + eps  # (N, H, 1)
        y = _segment_apply(fq, kv, seg) / den  # (N, H, Dv)
        ctx.save_for_backward(fq, fk, v, seg, y, den)
        ctx.n_windows = n_windows
        return y

    @staticmethod
    def backward(ctx, gy):
        fq, fk, v, seg, y, den = ctx.saved_tensors
        w = ctx.n_windows
        kv = _segment_outer(fk, v, seg, w)
        s = _segment_sum(fk, seg, w)
        ga = gy / den  # d/d(numerator)  (N, H, Dv)
        gb = -(gy * y).sum(-1, keepdim=True) / den  # d/d(denominator)  (N, H, 1)
        gfq = _segment_apply(ga, kv.transpose(-1, -2), seg) + gb * s[seg]
        gkv = _segment_outer(fq, ga, seg, w)  # (W, H, D, Dv)
        gs = _segment_sum(gb * fq, seg, w)  # (W, H, D)
        gfk = _segment_apply(v, gkv.transpose(-1, -2), seg) + gs[seg]
        gv = _segment_apply(fk, gkv, seg)
        return gfq, gfk, gv, None, None, None


@SCATTER_LINEAR_ATTENTION.register("torch")
def scatter_linear_attention_torch(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    offsets: torch.Tensor,
    *,
    feature_map: str = "relu",
    eps: float = 1e-6,
) -> torch.Tensor:
    """Exact PyTorch path: segment reductions with ``index_add_``, no padding, no window loop."""
    seg = segment_ids(offsets, q.shape[0])
    fq, fk = feature_map_fn(q, feature_map), feature_map_fn(k, feature_map)
    return _SegmentLinearAttention.apply(fq, fk, v, seg, offsets.numel() - 1, eps)


if TRITON_AVAILABLE:

    @SCATTER_LINEAR_ATTENTION.register("triton", *_triton.CONSTRAINTS)
    def scatter_linear_attention_triton(
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        offsets: torch.Tensor,
        *,
        feature_map: str = "relu",
        eps: float = 1e-6,
    ) -> torch.Tensor:
        """Triton path: one program per (window, head); phi is applied here by autograd."""
        fq, fk = feature_map_fn(q, feature_map), feature_map_fn(k, feature_map)
        return _triton.scatter_linear_attention_core_triton(fq, fk, v, offsets, eps)


def scatter_linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    offsets: torch.Tensor,
    *,
    feature_map: str = "relu",
    eps: float = 1e-6,
) -> torch.Tensor:
    """ScatterFormer's scattered linear attention over windows of a sorted voxel sequence.

    Args:
        q: (N, H, D) queries, rows sorted by window.
        k: (N, H, D) keys.
        v: (N, H, Dv) values.
        offsets: (W + 1,) integer window boundaries; rows ``offsets[w]:offsets[w + 1]`` form
            window w. Empty windows are allowed.
        feature_map: phi applied to q and k: ``"relu"`` or ``"elu1"`` (elu + 1).
        eps: added to the normaliser phi(q_n) . s_w.

    Returns:
        (N, H, Dv) per-window linear attention output.

    Raises:
        ValueError: on inconsistent shapes, dtypes, offsets or an unknown feature map.
    """
    _check_inputs(q, k, v, offsets, feature_map)
    return SCATTER_LINEAR_ATTENTION(q, k, v, offsets, feature_map=feature_map, eps=eps)
