"""Ahead-of-time compilation of Triton kernels for real GPUs, without a GPU.

The interpreter checks numerics, not compilation: block shapes below 16 for ``tl.dot``,
unsupported layouts or shared-memory overflow only show up when compiling. This helper
compiles a kernel for sm_80 (A100) and sm_90 (H100) with ``triton.compile(ASTSource(...),
target=GPUTarget(...))`` and checks that matrix products use tensor cores (``mma.sync`` on
sm_80, ``wgmma`` on sm_90) and that shared memory fits the target.

Compilation runs in a subprocess without ``TRITON_INTERPRET``: under the interpreter,
``@triton.jit`` yields interpreted functions that cannot be compiled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

# Maximum dynamic shared memory per block (bytes): A100 163 KB, H100 227 KB.
SHARED_LIMIT = {80: 166912, 90: 232448}
TENSOR_CORE_OP = {80: "mma.sync", 90: "wgmma"}

_COMPILE = r"""
import importlib, json, sys, time
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

specs = json.loads(sys.stdin.read())
out = []
for s in specs:
    start = time.process_time()
    module, _, name = s["kernel"].partition(":")
    fn = getattr(importlib.import_module(module), name)
    compiled = triton.compile(
        ASTSource(fn=fn, signature=s["signature"], constexprs=s["constexprs"]),
        target=GPUTarget("cuda", s["arch"], 32),
        options={"num_warps": s["num_warps"], "num_stages": s["num_stages"]},
    )
    ptx = compiled.asm["ptx"]
    report = {"arch": s["arch"], "shared": compiled.metadata.shared,
              "mma_sync": "mma.sync" in ptx, "wgmma": "wgmma" in ptx,
              "cpu_s": round(time.process_time() - start, 2)}
    if s["keep_ptx"]:
        report["ptx"] = ptx
    out.append(report)
    print(s["kernel"], s["arch"], report["cpu_s"], file=sys.stderr, flush=True)
print(json.dumps(out))
"""


def _kernel_path(kernel) -> str:
    if isinstance(kernel, str):
        return kernel
    fn = getattr(kernel, "fn", kernel)  # JITFunction / InterpretedFunction wrap the Python fn
    return f"{fn.__module__}:{fn.__name__}"


def compile_spec(
    kernel,
    signature: dict[str, str],
    constexprs: dict,
    *,
    num_warps: int = 4,
    num_stages: int = 2,
    archs: tuple[int, ...] = (80, 90),
) -> list[dict]:
    """The compile jobs of ``kernel`` (a jit function or ``"module:name"``), one per arch.

    ``signature`` maps every argument name to its Triton type (``"*fp16"``, ``"i32"``,
    ``"fp32"``, ``"constexpr"``); ``constexprs`` gives the values of the constexpr ones.
    """
    return [
        {
            "kernel": _kernel_path(kernel),
            "signature": signature,
            "constexprs": constexprs,
            "arch": arch,
            "num_warps": num_warps,
            "num_stages": num_stages,
        }
        for arch in archs
    ]


def compile_for_gpus(kernel, signature: dict[str, str], constexprs: dict, **options) -> list[dict]:
    """Compile ``kernel`` for each arch (options of :func:`compile_spec`).

    Returns one ``{"arch", "shared", "mma_sync", "wgmma", "cpu_s", "ptx"?}`` dict per arch
    (``cpu_s``: CPU seconds the compilation took).
    """
    return compile_specs(compile_spec(kernel, signature, constexprs, **options))


def compile_specs(specs: list[dict], *, keep_ptx: bool = False) -> list[dict]:
    """Run many compile jobs in one subprocess (one interpreter start-up for all of them).

    With ``keep_ptx`` every report also carries the PTX text.
    """
    specs = [dict(s, keep_ptx=keep_ptx) for s in specs]
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    tests_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [tests_dir, env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", _COMPILE],
        input=json.dumps(specs),
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if result.returncode != 0:
        raise AssertionError(f"Triton compilation failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def check_compiles(
    kernel,
    signature: dict[str, str],
    constexprs: dict,
    *,
    num_warps: int = 4,
    num_stages: int = 2,
    expect_tensor_cores: bool = True,
) -> list[dict]:
    """Assert ``kernel`` compiles for sm_80 and sm_90, fits shared memory, uses tensor cores."""
    reports = compile_for_gpus(
        kernel, signature, constexprs, num_warps=num_warps, num_stages=num_stages
    )
    for report in reports:
        assert_fits_and_uses_tensor_cores(report, expect_tensor_cores=expect_tensor_cores)
    return reports


def assert_fits_and_uses_tensor_cores(report: dict, *, expect_tensor_cores: bool = True) -> None:
    """Shared memory within the arch's limit; ``mma.sync`` (sm_80) / ``wgmma`` (sm_90) found."""
    arch = report["arch"]
    assert report["shared"] <= SHARED_LIMIT[arch], (
        f"sm_{arch}: {report['shared']} B shared memory > {SHARED_LIMIT[arch]} B"
    )
    if expect_tensor_cores:
        op = TENSOR_CORE_OP[arch]
        found = report["mma_sync"] if arch == 80 else report["wgmma"]
        assert found, f"sm_{arch}: no {op} in the PTX; matmuls do not use tensor cores"
