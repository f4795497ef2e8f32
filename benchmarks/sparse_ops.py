"""Sparse and linear attention ops against the implementations they replace.

- ``scatter_linear_attention`` on a long-tailed voxel workload vs padded per-window softmax
  attention and a Python loop over windows (same D, forward and forward + backward).
- ``deform_attn3d`` vs a naive gather of all 8 trilinear corners of every sample.
- causal ``chunked_linear_attention`` vs masked O(N^2) linear attention, N up to 64k; the
  scaling curve is saved as ``results/sparse_ops_linear_scaling.png``.

The PyTorch paths are timed on the CPU; the Triton paths are GPU kernels (on a CPU they only
run in the interpreter, which measures nothing useful).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from benchmarks.harness import RESULTS_DIR, Bench
from tessera.kernels import chunked_linear_attention, deform_attn3d, scatter_linear_attention


def long_tailed_windows(
    n_voxels: int = 20_000, n_windows: int = 400, sigma: float = 1.0, seed: int = 0
) -> torch.Tensor:
    """(W + 1,) offsets of windows whose sizes follow a log-normal law summing to ``n_voxels``.

    LiDAR voxels per BEV window are long-tailed: most windows hold a few dozen voxels, a few
    near the sensor or on large objects hold hundreds. Some windows end up empty.
    """
    gen = torch.Generator().manual_seed(seed)
    weights = torch.empty(n_windows).log_normal_(0.0, sigma, generator=gen)
    sizes = torch.floor(weights / weights.sum() * n_voxels).long()
    sizes[torch.argmax(sizes)] += n_voxels - int(sizes.sum())  # exact total
    return torch.cat([sizes.new_zeros(1), sizes.cumsum(0)])


def padded_window_attention(q, k, v, offsets):
    """Per-window softmax attention after padding every window to the largest one."""
    counts = offsets[1:] - offsets[:-1]
    n_windows, max_len = counts.numel(), int(counts.max())
    window = torch.repeat_interleave(torch.arange(n_windows), counts)
    slot = torch.arange(q.shape[0]) - offsets[:-1][window]
    mask = torch.arange(max_len)[None, :] < counts[:, None]  # (W, Lmax) True = real voxel

    def pad(x):  # (N, H, D) -> (W, H, Lmax, D)
        out = x.new_zeros(n_windows, max_len, *x.shape[1:])
        out[window, slot] = x
        return out.transpose(1, 2)

    out = F.scaled_dot_product_attention(pad(q), pad(k), pad(v), attn_mask=mask[:, None, None])
    return out.transpose(1, 2)[window, slot]


def window_loop_linear_attention(q, k, v, offsets, eps=1e-6):
    """The same linear attention, one window at a time."""
    outs = []
    for w in range(offsets.numel() - 1):
        rows = slice(int(offsets[w]), int(offsets[w + 1]))
        fq, fk = F.relu(q[rows]), F.relu(k[rows])
        kv = torch.einsum("nhd,nhe->hde", fk, v[rows])
        den = torch.einsum("nhd,hd->nh", fq, fk.sum(0))[..., None] + eps
        outs.append(torch.einsum("nhd,hde->nhe", fq, kv) / den)
    return torch.cat(outs)


def _with_backward(fn, *leaves):
    def run():
        out = fn(*leaves)
        out.backward(torch.ones_like(out))

    return run


def bench_scatter_linear_attention(bench: Bench) -> None:
    offsets = long_tailed_windows()
    counts = offsets[1:] - offsets[:-1]
    bench.note(
        f"SLA workload: {int(offsets[-1])} voxels in {counts.numel()} windows "
        f"(log-normal sizes: median {int(counts.median())}, max {int(counts.max())}, "
        f"{int((counts == 0).sum())} empty); 4 heads, D = 32 for every case."
    )
    q, k, v = (torch.randn(int(offsets[-1]), 4, 32) for _ in range(3))
    cases = {
        "scatter_linear_attention": lambda: scatter_linear_attention(q, k, v, offsets),
        "padded_softmax_attention": lambda: padded_window_attention(q, k, v, offsets),
        "window_loop_linear": lambda: window_loop_linear_attention(q, k, v, offsets),
    }
    bench.compare({"op": "SLA", "pass": "fwd"}, cases, baseline="padded_softmax_attention")
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    cases = {
        "scatter_linear_attention": _with_backward(
            lambda *t: scatter_linear_attention(*t, offsets), *leaves
        ),
        "padded_softmax_attention": _with_backward(
            lambda *t: padded_window_attention(*t, offsets), *leaves
        ),
    }
    if not bench.quick:  # ~1 min per call on a 2-core CPU: 400 small autograd graphs
        cases["window_loop_linear"] = _with_backward(
            lambda *t: window_loop_linear_attention(*t, offsets), *leaves
        )
    bench.compare({"op": "SLA", "pass": "fwd+bwd"}, cases, baseline="padded_softmax_attention")


def naive_gather_deform_attn3d(value, spatial_shapes, level_start_index, loc, weights):
    """Index all 8 corners of every sample at once: a (B, Nq, Hh, L, P, 8, Dh) gather."""
    b, s, hh, dh = value.shape
    sizes = spatial_shapes.to(loc.dtype)  # (L, 3) as (T, H, W)
    pix = loc * sizes.flip(-1)[:, None, :] - 0.5  # (B, Nq, Hh, L, P, 3) as (x, y, t)
    low = pix.floor()
    frac = pix - low
    corners = torch.tensor(
        [[dx, dy, dt] for dt in (0, 1) for dy in (0, 1) for dx in (0, 1)], dtype=loc.dtype
    )
    idx = low[..., None, :] + corners  # (B, Nq, Hh, L, P, 8, 3)
    wts = torch.where(corners.bool(), frac[..., None, :], 1 - frac[..., None, :]).prod(-1)
    limits = spatial_shapes.flip(-1)[:, None, None, :]  # (L, 1, 1, 3) as (W, H, T)
    inside = ((idx >= 0) & (idx < limits)).all(-1)
    x, y, t = idx.long().unbind(-1)
    w_size, h_size = spatial_shapes[:, 2, None, None], spatial_shapes[:, 1, None, None]
    rows = level_start_index[:, None, None] + (t * h_size + y) * w_size + x
    rows = torch.where(inside, rows, 0)
    heads = torch.arange(hh)[None, None, :, None, None, None].expand_as(rows)
    batch = torch.arange(b)[:, None, None, None, None, None].expand_as(rows)
    gathered = value[batch, rows, heads]  # (B, Nq, Hh, L, P, 8, Dh)
    coef = (wts * inside) * weights[..., None]
    return (gathered * coef[..., None]).sum((3, 4, 5)).reshape(b, -1, hh * dh)


def bench_deform_attn3d(bench: Bench) -> None:
    shapes = torch.tensor([[4, 32, 32], [2, 16, 16], [1, 8, 8]])
    sizes = shapes.prod(1)
    starts = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    b, nq, hh, dh, p = 2, 1000, 8, 32, 4
    value = torch.randn(b, int(sizes.sum()), hh, dh)
    loc = torch.rand(b, nq, hh, 3, p, 3)
    weights = torch.rand(b, nq, hh, 3, p).softmax(-1)
    args = (value, shapes, starts, loc, weights)
    cases = {
        "deform_attn3d": lambda: deform_attn3d(*args),
        "naive_gather": lambda: naive_gather_deform_attn3d(*args),
    }
    params = {"op": "deform_attn3d", "B": b, "Nq": nq, "L": 3, "P": p, "Hh": hh, "Dh": dh}
    bench.compare(params | {"pass": "fwd"}, cases, baseline="naive_gather")
    leaves = [t.clone().requires_grad_() for t in (value, loc, weights)]

    def grad_case(fn):
        return _with_backward(lambda v, sl, aw: fn(v, shapes, starts, sl, aw), *leaves)

    cases = {
        "deform_attn3d": grad_case(deform_attn3d),
        "naive_gather": grad_case(naive_gather_deform_attn3d),
    }
    bench.compare(params | {"pass": "fwd+bwd"}, cases, baseline="naive_gather")


def masked_linear_attention(q, k, v):
    """Causal linear attention through the full (N, N) score matrix."""
    return (q @ k.transpose(-1, -2)).tril_() @ v / q.shape[2]


@contextlib.contextmanager
def _torch_threads(n: int):
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def bench_chunked_linear_attention(bench: Bench) -> None:
    bench.note(
        "Causal linear attention runs on one torch thread: at small N each op is ~1 ms, and on a "
        "shared machine the intra-op thread pool's wake-up latency would dominate the curve."
    )
    with _torch_threads(1):
        _bench_chunked_linear_attention(bench)


def _bench_chunked_linear_attention(bench: Bench) -> None:
    lengths = [1024, 2048, 4096, 8192, 16384, 32768, 65536]
    naive_max = 8192 if bench.quick else 16384  # (N, N) fp32 scores: 256 MB / 1 GB
    curve = {"chunked_linear_attention": [], "masked_quadratic": []}
    for n in lengths:
        qkv = tuple(torch.randn(1, 1, n, 64) for _ in range(3))
        cases = {
            "chunked_linear_attention": lambda qkv=qkv: chunked_linear_attention(*qkv, causal=True)
        }
        if n <= naive_max:
            cases["masked_quadratic"] = lambda qkv=qkv: masked_linear_attention(*qkv)
        row = bench.compare(
            {"op": "causal linear attention", "N": n, "D": 64},
            cases,
            baseline="chunked_linear_attention",
        )
        for r in row.cases:
            if r.median_s:
                curve[r.name].append((n, r.median_s))
    bench.note(f"masked_quadratic is skipped above N = {naive_max} (its N x N scores).")
    _plot_scaling(curve, RESULTS_DIR / "sparse_ops_linear_scaling.png")


def _plot_scaling(curve: dict[str, list[tuple[int, float]]], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, points in curve.items():
        if points:
            ns, times = zip(*points, strict=True)
            ax.loglog(ns, [t * 1e3 for t in times], marker="o", label=name)
    ax.set_xlabel("sequence length N")
    ax.set_ylabel("forward time (ms)")
    ax.set_title("causal linear attention (B=1, H=1, D=64, CPU, 1 thread)", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(bench: Bench) -> None:
    bench_scatter_linear_attention(bench)
    bench_deform_attn3d(bench)
    bench_chunked_linear_attention(bench)
