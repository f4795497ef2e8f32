"""Attention kernels on real GPUs: ahead-of-time compilation (runs on CPU) and CUDA tests.

The compile tests build every kernel for sm_80 and sm_90 in every block config it can be
launched with (the fixed config and the autotune candidates), with the heaviest head dim
(128) and every feature on, and assert tensor-core matmuls and a shared-memory fit. The
CUDA tests run the compiled kernels (fp16 and bf16, which the interpreter cannot check) and
are skipped with the reason on machines without a GPU.
"""

import inspect

import pytest
import torch

from helpers.attention_inputs import assert_within_plain_error, dense_inputs, key_mask
from helpers.triton_compile import check_compiles
from tessera.kernels import _attention_triton as tri
from tessera.kernels import attention
from tessera.kernels.attention import ATTENTION
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


FEATURES = dict(CAUSAL=True, HAS_MASK=True, IS_VARLEN=False, BLOCK_D=128)


@pytest.mark.parametrize("cfg", tri.FWD_CONFIGS, ids=str)
def test_forward_compiles_with_tensor_cores(cfg):
    constexprs = dict(FEATURES, HAS_GATE=True, BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n)
    check_compiles(
        tri._attn_fwd,
        _signature(tri._attn_fwd, "fp16", constexprs),
        constexprs,
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages,
    )


@pytest.mark.parametrize("kernel", [tri._attn_bwd_dkdv, tri._attn_bwd_dq], ids=lambda k: k.__name__)
@pytest.mark.parametrize("cfg", tri.BWD_CONFIGS, ids=str)
def test_backward_compiles_with_tensor_cores(kernel, cfg):
    constexprs = dict(FEATURES, BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n)
    check_compiles(
        kernel,
        _signature(kernel, "fp16", constexprs),
        constexprs,
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages,
    )


def test_fixed_config_compiles_for_bf16_varlen_with_tensor_cores():
    cfg = tri.FWD_CONFIGS[0]
    constexprs = dict(
        FEATURES, HAS_MASK=False, HAS_GATE=False, IS_VARLEN=True, BLOCK_M=cfg.block_m,
        BLOCK_N=cfg.block_n,
    )  # fmt: skip
    check_compiles(
        tri._attn_fwd,
        _signature(tri._attn_fwd, "bf16", constexprs),
        constexprs,
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages,
    )


def test_fp32_compiles_with_exact_ieee_matmuls():
    """fp32 uses IEEE fp32 products (no TF32), so no tensor-core instruction is expected."""
    cfg = tri.FWD_CONFIGS[0]
    constexprs = dict(FEATURES, HAS_GATE=True, BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n)
    constexprs["BLOCK_D"] = 64  # unrolled fp32 FMAs compile slowly; D=128 adds nothing here
    reports = check_compiles(
        tri._attn_fwd,
        _signature(tri._attn_fwd, "fp32", constexprs),
        constexprs,
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages,
        expect_tensor_cores=False,
    )
    assert not any(r["wgmma"] for r in reports)


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
def test_speed_benchmark_runs_on_gpu():
    """The GPU table of ``make bench`` runs end to end (timings are reported there, not here)."""
    from benchmarks.attention import gpu_table
    from benchmarks.harness import Bench

    bench = Bench("attention_gpu_smoke", quick=True)
    gpu_table(bench, sizes=[1024], dims=(64,))
    assert bench.rows and all(c.error is None for row in bench.rows for c in row.cases)
