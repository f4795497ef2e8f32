"""The machine's own limits: fp32 GEMM rate and memory bandwidth.

Kernel benchmarks report their throughput as a fraction of these numbers, so a reader can
tell how far from the hardware's limit an op runs, not only how it compares to a peer.
"""

from __future__ import annotations

import time
from functools import cache

import torch

from benchmarks.harness import Bench


def _best_time(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


@cache
def gemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best observed fp32 ``torch.mm`` rate on an ``n x n`` problem, in GFLOP/s."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    return 2 * n**3 / _best_time(lambda: torch.mm(a, b, out=out), repeats) / 1e9


@cache
def memory_bandwidth_gbs(mbytes: int = 512, repeats: int = 5) -> float:
    """Best observed copy bandwidth (bytes read + written per second), in GB/s."""
    src = torch.empty(mbytes * 2**20 // 4, dtype=torch.float32).fill_(1.0)
    dst = torch.empty_like(src)
    return 2 * src.numel() * 4 / _best_time(lambda: dst.copy_(src), repeats) / 1e9


def run(bench: Bench) -> None:
    sizes = [1024] if bench.quick else [1024, 2048, 4096]
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        bench.compare(
            {"op": "fp32 GEMM", "n": n},
            {"torch.mm": lambda a=a, b=b: torch.mm(a, b)},
            baseline="torch.mm",
            flops=2 * n**3,
            memory=False,
        )
    bench.note(f"peak fp32 GEMM: {gemm_gflops():.1f} GFLOP/s (2048^3, best of 5)")
    bench.note(f"copy bandwidth: {memory_bandwidth_gbs():.1f} GB/s (512 MiB, best of 5)")
