"""Attention: ``tessera.kernels.attention`` against SDPA and naive softmax(QK^T)V.

CPU table (B=1, H=8, D=64): the exact PyTorch path must stay within 5% of
``F.scaled_dot_product_attention`` where SDPA applies, and its memory must stay linear in N
(the naive baseline materialises the (N, N) scores per head). GFLOP/s are also reported as a
fraction of this machine's fp32 GEMM rate. GPU table (only with CUDA): the Triton kernels
against SDPA's flash backend, forward and forward+backward TFLOP/s.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from benchmarks.harness import Bench
from benchmarks.machine import gemm_gflops
from tessera.kernels import attention

NAIVE_MAX_N = 4096  # (8, N, N) fp32 scores: 512 MiB at 4k, 8 GiB at 16k


def naive_attention(q, k, v, causal=False):
    """softmax(q k^T / sqrt(D)) v with the full score matrix."""
    scores = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5  # (B, H, N, N)
    if causal:
        n = q.shape[-2]
        scores = scores.masked_fill(~torch.ones(n, n, dtype=torch.bool).tril(), float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def attention_flops(b, h, nq, nk, d, causal=False, backward=False) -> float:
    """Matmul FLOPs: QK^T and PV forward (x 3.5 with the backward's five matmuls)."""
    flops = 4 * b * h * nq * nk * d * (0.5 if causal else 1.0)
    return flops * 3.5 if backward else flops


def _cpu_cases(n: int, causal: bool) -> dict:
    q, k, v = (torch.randn(1, 8, n, 64) for _ in range(3))
    cases = {
        "sdpa": partial(F.scaled_dot_product_attention, q, k, v, is_causal=causal),
        "attention": partial(attention, q, k, v, causal=causal),
    }
    if n <= NAIVE_MAX_N:
        cases["naive"] = partial(naive_attention, q, k, v, causal)
    return cases


def _masked_cases(n: int) -> dict:
    """10% padded keys: SDPA with a broadcast bool mask vs ours (with its zero-row guard)."""
    q, k, v = (torch.randn(1, 8, n, 64) for _ in range(3))
    mask = torch.ones(1, n, dtype=torch.bool)
    mask[:, -n // 10 :] = False
    return {
        "sdpa": partial(F.scaled_dot_product_attention, q, k, v, attn_mask=mask[:, None, None]),
        "attention": partial(attention, q, k, v, key_padding_mask=mask),
    }


def cpu_table(bench: Bench) -> None:
    sizes = [256, 1024, 4096] if bench.quick else [256, 1024, 4096, 16384]
    causal_sizes = [1024] if bench.quick else [1024, 4096]
    gemm = gemm_gflops()
    bench.note(f"CPU: B=1, H=8, D=64, fp32; machine fp32 GEMM {gemm:.1f} GFLOP/s")
    rows = [(n, False) for n in sizes] + [(n, True) for n in causal_sizes]
    for n, causal in rows:
        row = bench.compare(
            {"device": "cpu", "N": n, "causal": causal},
            _cpu_cases(n, causal),
            baseline="sdpa",
            flops=attention_flops(1, 8, n, n, 64, causal),
        )
        for case in row.cases:
            if case.median_s:
                case.extra["gemm_fraction"] = case.extra["gflops"] / gemm
    n = 1024 if bench.quick else 4096
    bench.compare(
        {"device": "cpu", "N": n, "key_padding_mask": "10% padded"},
        _masked_cases(n),
        baseline="sdpa",
        flops=attention_flops(1, 8, n, n, 64),
    )
    if max(sizes) > NAIVE_MAX_N:
        bench.note(f"naive omitted above N={NAIVE_MAX_N}: its (H, N, N) scores take >= 8 GiB")


def _flash_sdpa(q, k, v, causal):
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


def _triton(q, k, v, causal):
    return attention(q, k, v, causal=causal)


def _fwd_bwd(fn, *args):
    out = fn(*args)
    out.backward(torch.ones_like(out))


def gpu_table(bench: Bench, sizes=None, dims=(64, 128)) -> None:
    """Triton vs SDPA flash on CUDA in fp16, with B * N = 16k tokens and H * D = 2048."""
    sizes = sizes or ([1024, 4096] if bench.quick else [1024, 2048, 4096, 8192, 16384])
    for d in dims:
        for causal in (False, True):
            for n in sizes:
                b, h = max(1, 16384 // n), 2048 // d
                q, k, v = (
                    torch.randn(b, h, n, d, device="cuda", dtype=torch.float16, requires_grad=True)
                    for _ in range(3)
                )
                for mode in ("fwd", "fwd+bwd"):
                    cases = {
                        name: partial(fn, q, k, v, causal)
                        if mode == "fwd"
                        else partial(_fwd_bwd, fn, q, k, v, causal)
                        for name, fn in (("sdpa_flash", _flash_sdpa), ("triton", _triton))
                    }
                    row = bench.compare(
                        {"device": "cuda", "mode": mode, "D": d, "N": n, "B": b, "causal": causal},
                        cases,
                        baseline="sdpa_flash",
                        device="cuda",
                        flops=attention_flops(b, h, n, n, d, causal, backward=mode != "fwd"),
                    )
                    for case in row.cases:
                        if case.median_s:
                            case.extra["tflops"] = case.extra["gflops"] / 1e3


def run(bench: Bench) -> None:
    cpu_table(bench)
    if torch.cuda.is_available():
        gpu_table(bench)
    else:
        bench.note("GPU table skipped: no CUDA device (run on a GPU machine for Triton numbers)")
