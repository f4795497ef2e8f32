"""Attention kernels on real GPUs: ahead-of-time compilation (runs on CPU) and CUDA tests.

The compile tests build the forward, dK/dV and dQ kernels for sm_80 and sm_90 in every
block config they can be launched with (the fixed config and the autotune candidates), for
fp16 and fp32 with TF32 tensor cores at the heaviest head dim (128) with every feature on,
plus bf16 and head dims 32 / 64 in the fixed config, and assert tensor-core matmuls and a
shared-memory fit. All variants compile in one subprocess (about 60 compiles). The CUDA
tests run the compiled kernels (fp16 and bf16, which the interpreter cannot check) and are
skipped with the reason on machines without a GPU.
"""

import functools
import inspect
from pathlib import Path

import pytest
import torch

from helpers.attention_inputs import assert_within_plain_error, dense_inputs, key_mask
from helpers.triton_compile import (
    assert_fits_and_uses_tensor_cores,
    check_compiles,
    compile_spec,
    compile_specs,
)
from tessera.kernels import _attention_triton as tri
from tessera.kernels import attention, varlen_attention
from tessera.kernels.attention import ATTENTION, varlen_attention_torch
from tessera.kernels.reference import attention_reference

pytestmark = pytest.mark.kernels

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _signature(kernel, dtype: str, constexprs: dict) -> dict[str, str]:
    """Triton types of every argument, by the kernels' naming convention."""
    types = {}
    for name in inspect.signature(getattr(kernel, "fn", kernel)).parameters:
        if name in constexprs:
            types[name] = "constexpr"
        elif name == "Mask":
            types[name] = "*u8"
        elif name in ("CuQ", "CuK"):
            types[name] = "*i32"
        elif name in ("Lse", "Delta"):
            types[name] = "*fp32"
        elif name[0].isupper():
            types[name] = f"*{dtype}"
        elif name.endswith("scale"):
            types[name] = "fp32"
        else:
            types[name] = "i32"
    return types


KERNELS = {"fwd": tri._attn_fwd, "dkdv": tri._attn_bwd_dkdv, "dq": tri._attn_bwd_dq}
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32-tf32": torch.float32}


def _constexprs(kernel_name: str, cfg, head_dim: int, precision: str) -> dict:
    """Every feature on; boundary tiles present (EVEN_M/N off) next to the unmasked loop."""
    flags = dict(CAUSAL=True, HAS_MASK=True, IS_VARLEN=False, PRECISION=precision)
    flags |= dict(BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_D=head_dim, EVEN_HEADDIM=True)
    if kernel_name == "fwd":
        return flags | dict(HAS_GATE=True, EVEN_N=False)
    return flags | (dict(EVEN_M=False) if kernel_name == "dkdv" else dict(EVEN_N=False))


def _variants() -> list[tuple[str, str, int, object]]:
    """(kernel, dtype, head dim, config), a covering of configs x dtypes x head dims.

    Every config of every kernel in fp16 at D = 128 (the largest tiles); every fp32 config
    of the forward with TF32 and the fixed fp32 config of both backward kernels; bf16 and
    D = 32 / 64 in the fixed forward config (the backward kernels share its tiling code).
    Compiling is CPU work (about 2 s per kernel and arch), so the full product is not built.
    """
    out = []
    for name in KERNELS:
        out += [(name, "fp16", 128, cfg) for cfg in tri.configs_for(name, torch.float16)]
        fp32 = tri.configs_for(name, torch.float32)
        out += [(name, "fp32-tf32", 128, cfg) for cfg in (fp32 if name == "fwd" else fp32[:1])]
    fixed = tri.FWD_CONFIGS[0]
    out += [("fwd", "bf16", 128, fixed), ("fwd", "fp16", 32, fixed), ("fwd", "fp16", 64, fixed)]
    return out


VARIANTS = _variants()


def _spec(name: str, dtype: str, head_dim: int, cfg) -> list[dict]:
    precision = "tf32" if dtype == "fp32-tf32" else "ieee"
    constexprs = _constexprs(name, cfg, head_dim, precision)
    kernel = KERNELS[name]
    signature = _signature(kernel, dtype.split("-")[0], constexprs)
    return compile_spec(
        kernel, signature, constexprs, num_warps=cfg.num_warps, num_stages=cfg.num_stages
    )


@functools.cache
def _compiled(kernel_name: str) -> dict:
    """Reports of every variant of one kernel, compiled for sm_80 and sm_90 in one subprocess
    (one per kernel keeps each test's share of the work well inside the test timeout)."""
    variants = [v for v in VARIANTS if v[0] == kernel_name]
    reports = compile_specs([job for v in variants for job in _spec(*v)])
    return {v: reports[2 * i : 2 * i + 2] for i, v in enumerate(variants)}


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: f"{v[0]}-{v[1]}-d{v[2]}-{v[3]}")
def test_kernel_compiles_with_tensor_cores(variant):
    reports = _compiled(variant[0])[variant]
    assert [r["arch"] for r in reports] == [80, 90]
    for report in reports:
        assert_fits_and_uses_tensor_cores(report)


def test_fp32_compiles_with_exact_ieee_matmuls():
    """Without TF32, fp32 uses IEEE fp32 products: no tensor-core instruction is expected."""
    cfg = tri.configs_for("fwd", torch.float32)[0]
    constexprs = _constexprs("fwd", cfg, 64, "ieee")  # unrolled fp32 FMAs compile slowly
    reports = check_compiles(
        tri._attn_fwd,
        _signature(tri._attn_fwd, "fp32", constexprs),
        constexprs,
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages,
        expect_tensor_cores=False,
    )
    assert not any(r["wgmma"] or r["mma_sync"] for r in reports)


def test_backward_preprocess_compiles():
    constexprs = dict(HAS_GATE=True, IS_VARLEN=False, BLOCK_M=tri.PREPROCESS_BLOCK_M, BLOCK_D=128)
    check_compiles(
        tri._attn_bwd_preprocess,
        _signature(tri._attn_bwd_preprocess, "fp16", constexprs),
        constexprs,
        expect_tensor_cores=False,
    )


# ----------------------------------------------------------------------------- CUDA only


@needs_cuda
@pytest.mark.gpu
def test_cuda_tensors_dispatch_to_triton(monkeypatch):
    monkeypatch.delenv("TESSERA_KERNELS", raising=False)
    q, k, v, _ = dense_inputs(1, 2, 8, 8, 64, torch.float16, gate=False, device="cuda")
    assert ATTENTION.select(q, k, v, None, None, False, 0.125)[0] == "triton"


@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize(
    ("nq", "nk", "d", "mask", "causal", "gate"),
    [
        (1, 1, 16, "none", False, False),
        (257, 1000, 128, "ragged", True, True),
        (1000, 257, 40, "empty_batch", True, False),
        (512, 512, 64, "prefix", False, True),
        (333, 77, 96, "none", True, True),
    ],
)
def test_compiled_kernels_vs_fp64_reference(nq, nk, d, mask, causal, gate, dtype):
    q, k, v, g = dense_inputs(2, 3, nq, nk, d, dtype, gate=gate, device="cuda")
    m = key_mask(mask, 2, nk)
    m = m.cuda() if m is not None else None
    inputs = (q, k, v, *([g] if gate else []))
    kwargs = dict(key_padding_mask=m, causal=causal, gate=g)
    out = attention(q, k, v, **kwargs)
    ref = attention_reference(q, k, v, **kwargs)
    plain = attention_reference(q, k, v, upcast=False, **kwargs)
    assert out.dtype == dtype
    assert_within_plain_error("out", out, plain, ref, dtype)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, inputs, grad)
    want = torch.autograd.grad(ref, inputs, grad.double())
    base = torch.autograd.grad(plain, inputs, grad)
    for name, a, b, c in zip(["q", "k", "v", "gate"], got, want, base, strict=False):
        assert_within_plain_error(f"d{name}", a, c, b, dtype)


@needs_cuda
@pytest.mark.gpu
def test_backward_is_deterministic():
    q, k, v, g = dense_inputs(2, 4, 700, 900, 64, torch.float16, gate=True, device="cuda")
    grad = torch.randn(q.shape, device="cuda", dtype=q.dtype)

    def grads():
        out = attention(q, k, v, causal=True, gate=g)
        return torch.autograd.grad(out, (q, k, v, g), grad)

    for a, b in zip(grads(), grads(), strict=True):
        assert torch.equal(a, b)


@needs_cuda
@pytest.mark.gpu
def test_speed_benchmark_runs_on_gpu(monkeypatch):
    """The GPU table of ``make bench`` runs end to end (timings are reported there, not here)."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    from benchmarks.attention import gpu_table
    from benchmarks.harness import Bench

    bench = Bench("attention_gpu_smoke", quick=True)
    gpu_table(bench, sizes=[1024], dims=(64,))
    assert bench.rows and all(c.error is None for row in bench.rows for c in row.cases)


@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("tf32", [False, True])
def test_fp32_ieee_and_tf32_vs_fp64_reference(tf32):
    """fp32 is exact (IEEE products) by default and within TF32's error when it is allowed."""
    matmul = torch.backends.cuda.matmul
    before = matmul.allow_tf32
    matmul.allow_tf32 = tf32
    try:
        q, k, v, g = dense_inputs(2, 3, 300, 700, 64, torch.float32, gate=True, device="cuda")
        out = attention(q, k, v, causal=True, gate=g)
        ref = attention_reference(q, k, v, causal=True, gate=g)
        tol = 5e-3 if tf32 else 1e-5
        torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol)
        grad = torch.randn_like(out)
        got = torch.autograd.grad(out, (q, k, v, g), grad)
        want = torch.autograd.grad(ref, (q, k, v, g), grad.double())
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a.double(), b, rtol=tol, atol=tol * 10)
    finally:
        matmul.allow_tf32 = before


@needs_cuda
@pytest.mark.gpu
def test_more_sequences_than_grid_y_and_z_allow():
    """100k sequences (grid y / z stop at 65 535): dense batch and varlen, as DSVT pooling."""
    q, k, v, _ = dense_inputs(100_000, 1, 5, 7, 16, torch.float16, gate=False, device="cuda")
    out = attention(q, k, v)
    ref = attention_reference(q, k, v)
    plain = attention_reference(q, k, v, upcast=False)
    assert_within_plain_error("out", out, plain, ref, torch.float16)
    lens = torch.randint(1, 9, (100_000,), device="cuda")
    cu = torch.cat([lens.new_zeros(1), lens.cumsum(0)]).to(torch.int32)
    total = int(cu[-1])
    qv, kv, vv = (torch.randn(total, 2, 32, device="cuda", dtype=torch.float16) for _ in range(3))
    outv = varlen_attention(qv, kv, vv, cu, cu, 8, 8)
    refv = varlen_attention_torch(qv.float(), kv.float(), vv.float(), cu, cu, 8, 8, False, 32**-0.5)
    torch.testing.assert_close(outv.float(), refv, rtol=2e-3, atol=2e-3)


@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_long_sequence_matches_sdpa_in_fp32(dtype):
    """N = 64k causal: against SDPA on fp32 copies (an fp64 reference would need 32 GiB)."""
    q, k, v, _ = dense_inputs(1, 2, 65536, 65536, 64, dtype, gate=False, device="cuda")
    out = attention(q, k, v, causal=True)
    ref = torch.nn.functional.scaled_dot_product_attention(
        q.float(), k.float(), v.float(), is_causal=True
    )
    tol = 4e-3 if dtype == torch.float16 else 3e-2
    torch.testing.assert_close(out.float(), ref, rtol=tol, atol=tol)
