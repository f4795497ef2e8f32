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

import warnings

import torch
import torch.nn.functional as F

from tessera.kernels.dispatch import TRITON_AVAILABLE, KernelOp

if TRITON_AVAILABLE:
    from tessera.kernels import _scatter_linear_attention_triton as _triton

SCATTER_LINEAR_ATTENTION = KernelOp("scatter_linear_attention")
FEATURE_MAPS = ("relu", "elu1")


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


class _WindowLayout:
    """The window structure of (N, H, Da) rows as sparse CSR matrices, built once per call.

    Per-window sums of outer products and per-row products with a window's matrix are then
    one sparse-dense matmul each, O(N * H * Da * Db) work with no (N, H, Da, Db) temporary:

    - ``to_windows(a)`` is (W * H * Da, N * H): row (w, h, d) holds a[n, h, d] for n in w;
    - ``to_rows(a)`` is (N * H, W * H * Da): row (n, h) holds a[n, h, :] at window(n)'s columns.
    """

    def __init__(self, offsets: torch.Tensor, n: int, h: int):
        self.offsets, self.n, self.h = offsets, n, h
        self.n_windows = offsets.numel() - 1
        self.seg = segment_ids(offsets, n)  # (N,)
        self._cache: dict[int, tuple[torch.Tensor, ...]] = {}

    def _indices(self, da: int) -> tuple[torch.Tensor, ...]:
        if da not in self._cache:
            n, h, w, seg, dev = self.n, self.h, self.n_windows, self.seg, self.offsets.device
            starts, counts = self.offsets[:-1], self.offsets[1:] - self.offsets[:-1]
            hd = torch.arange(h * da, device=dev)  # (h, d) flattened
            # to_rows: column (window(n) * H + h) * Da + d of entry (n, h, d).
            rows_col = (seg[:, None] * (h * da) + hd).reshape(-1)
            rows_crow = torch.arange(0, n * h * da + 1, da, device=dev)
            # to_windows: entry (n, h, d) sits at starts[w] * H * Da + (h * Da + d) * c_w + j
            # for n = starts[w] + j; ``src`` lists the entries in that order.
            j = torch.arange(n, device=dev) - starts[seg]
            pos = (starts[seg] * (h * da) + j)[:, None] + hd * counts[seg][:, None]
            src = torch.empty(n * h * da, dtype=torch.long, device=dev)
            src[pos.reshape(-1)] = torch.arange(n * h * da, device=dev)
            win_crow = torch.empty(w * h * da + 1, dtype=torch.long, device=dev)
            win_crow[:-1] = (starts[:, None] * (h * da) + hd * counts[:, None]).reshape(-1)
            win_crow[-1] = n * h * da
            self._cache[da] = (rows_crow, rows_col, win_crow, src, src // da)
        return self._cache[da]

    @staticmethod
    def _csr(crow, col, values, size) -> torch.Tensor:
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(crow, col, values, size, check_invariants=False)

    def segment_outer(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(W, H, Da, Db) = per-window sum of a_n^T b_n; a (N, H, Da), b (N, H, Db)."""
        da, db = a.shape[2], b.shape[2]
        _, _, crow, src, col = self._indices(da)
        size = (self.n_windows * self.h * da, self.n * self.h)
        out = self._csr(crow, col, a.reshape(-1)[src], size) @ b.reshape(-1, db)
        return out.view(self.n_windows, self.h, da, db)

    def segment_apply(self, a: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """(N, H, Db) = a_n @ m[window(n)]; a (N, H, Da), m (W, H, Da, Db)."""
        da, db = a.shape[2], m.shape[3]
        crow, col, _, _, _ = self._indices(da)
        size = (self.n * self.h, self.n_windows * self.h * da)
        out = self._csr(crow, col, a.reshape(-1), size) @ m.reshape(-1, db)
        return out.view(self.n, self.h, db)

    def segment_sum(self, a: torch.Tensor) -> torch.Tensor:
        """(W, H, Da) per-window sum of a (N, H, Da); rows are sorted by window."""
        counts = self.offsets[1:] - self.offsets[:-1]
        return torch.segment_reduce(a, "sum", lengths=counts, axis=0)


class _SegmentLinearAttention(torch.autograd.Function):
    """Core on feature-mapped inputs; backward recomputes KV_w instead of saving per-row copies."""

    @staticmethod
    def forward(ctx, fq, fk, v, layout: _WindowLayout, eps: float):
        kv = layout.segment_outer(fk, v)  # (W, H, D, Dv)
        s = layout.segment_sum(fk)  # (W, H, D)
        den = (fq * s[layout.seg]).sum(-1, keepdim=True) + eps  # (N, H, 1)
        y = layout.segment_apply(fq, kv) / den  # (N, H, Dv)
        ctx.save_for_backward(fq, fk, v, y, den)
        ctx.layout = layout
        return y

    @staticmethod
    def backward(ctx, gy):
        fq, fk, v, y, den = ctx.saved_tensors
        layout = ctx.layout
        kv = layout.segment_outer(fk, v)
        s = layout.segment_sum(fk)
        ga = gy / den  # d/d(numerator)  (N, H, Dv)
        gb = -(gy * y).sum(-1, keepdim=True) / den  # d/d(denominator)  (N, H, 1)
        gfq = layout.segment_apply(ga, kv.transpose(-1, -2)) + gb * s[layout.seg]
        gkv = layout.segment_outer(fq, ga)  # (W, H, D, Dv)
        gs = layout.segment_sum(gb * fq)  # (W, H, D)
        gfk = layout.segment_apply(v, gkv.transpose(-1, -2)) + gs[layout.seg]
        gv = layout.segment_apply(fk, gkv)
        return gfq, gfk, gv, None, None


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
    """Exact PyTorch path: segment sums as sparse-dense matmuls, no padding, no window loop.

    Half-precision inputs are computed in fp32 (CPU sparse matmuls need fp32 / fp64).
    """
    dtype = q.dtype
    if dtype in (torch.float16, torch.bfloat16):
        q, k, v = q.float(), k.float(), v.float()
    layout = _WindowLayout(offsets, q.shape[0], q.shape[1])
    fq, fk = feature_map_fn(q, feature_map), feature_map_fn(k, feature_map)
    return _SegmentLinearAttention.apply(fq, fk, v, layout, eps).to(dtype)


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
