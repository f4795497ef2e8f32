"""``python -m benchmarks gpu`` (``make gpu-check``): verify the kernels on a CUDA machine.

One command, one markdown report (``benchmarks/results/gpu_check.md``):

1. every GPU test (``pytest -m gpu`` over ``tests/kernels`` and ``tests/shared_blocks``):
   numerics against the fp64 reference in fp16 / bf16 / fp32, determinism, large-grid and
   long-sequence cases;
2. the GPU benchmarks: attention forward and forward+backward against SDPA's flash backend
   (N = 1k-16k, D = 64 / 128, causal and not, fp16 / bf16), ``deform_attn3d``,
   ``scatter_linear_attention``, ``chunked_linear_attention``, and DSVT / FlatFormer /
   ScatterFormer end to end.

Sized to finish in under 8 minutes on one H100 / H200 (including Triton compilation and
autotuning); it uses the installed torch / triton and downloads nothing. On a machine without
a CUDA device it prints that no GPU was found and exits 0.

Throughput targets (checked in the report, not asserted by the tests): the Triton attention
forward reaches at least 0.9x and forward+backward at least 0.8x the throughput of the SDPA
flash backend at N >= 2k, D = 64 / 128, fp16 / bf16.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import torch

from benchmarks.harness import RESULTS_DIR, Bench, machine_info

# Minimum throughput of the Triton attention relative to SDPA flash (= time ratio SDPA/ours).
TARGETS = {"fwd": 0.9, "fwd+bwd": 0.8}
TARGET_MIN_N = 2048
TIME_BUDGET_S = 8 * 60
REPORT = "gpu_check.md"
REPO = Path(__file__).resolve().parent.parent
TEST_PATHS = ("tests/kernels", "tests/shared_blocks")


def run_gpu_tests() -> tuple[int, str]:
    """``pytest -m gpu``; returns (exit code, the summary lines)."""
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rfEs", *TEST_PATHS]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    lines = (result.stdout + result.stderr).strip().splitlines()
    return result.returncode, "\n".join(lines[-40:])


def _attention_rows(bench: Bench, dtypes) -> None:
    from benchmarks.attention import _flash_sdpa, _fwd_bwd, _triton, attention_flops

    for dtype in dtypes:
        for d in (64, 128):
            for causal in (False, True):
                for n in (1024, 2048, 4096, 8192, 16384):
                    b, h = max(1, 16384 // n), 2048 // d
                    q, k, v = (
                        torch.randn(b, h, n, d, device="cuda", dtype=dtype, requires_grad=True)
                        for _ in range(3)
                    )
                    for mode in ("fwd", "fwd+bwd"):
                        fns = {"sdpa_flash": _flash_sdpa, "triton": _triton}
                        cases = {
                            name: partial(fn, q, k, v, causal)
                            if mode == "fwd"
                            else partial(_fwd_bwd, fn, q, k, v, causal)
                            for name, fn in fns.items()
                        }
                        params = {"mode": mode, "dtype": str(dtype).split(".")[-1], "D": d}
                        params |= {"N": n, "B": b, "H": h, "causal": causal}
                        bench.compare(
                            params,
                            cases,
                            baseline="sdpa_flash",
                            device="cuda",
                            flops=attention_flops(b, h, n, n, d, causal, backward=mode != "fwd"),
                            memory=False,
                        )


def _sparse_rows(bench: Bench) -> None:
    from benchmarks.sparse_ops import long_tailed_windows, padded_window_attention
    from tessera.kernels import chunked_linear_attention, deform_attn3d, scatter_linear_attention

    dev = "cuda"
    shapes = torch.tensor([[4, 64, 64], [2, 32, 32], [1, 16, 16]], device=dev)
    sizes = shapes.prod(1)
    starts = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    b, nq, hh, dh, p = 4, 20_000, 8, 32, 4
    value = torch.randn(b, int(sizes.sum()), hh, dh, device=dev, requires_grad=True)
    loc = torch.rand(b, nq, hh, 3, p, 3, device=dev, requires_grad=True)
    weights = torch.rand(b, nq, hh, 3, p, device=dev).softmax(-1).requires_grad_()

    def deform_fwd_bwd():
        deform_attn3d(value, shapes, starts, loc, weights).sum().backward()

    params = {"op": "deform_attn3d", "B": b, "Nq": nq, "Hh": hh, "Dh": dh, "L": 3, "P": p}
    bench.compare(
        params,
        {
            "fwd": lambda: deform_attn3d(value, shapes, starts, loc, weights),
            "fwd+bwd": deform_fwd_bwd,
        },
        baseline="fwd",
        device=dev,
        memory=False,
    )

    offsets = long_tailed_windows(200_000, 4000).to(dev)
    q, k, v = (torch.randn(200_000, 4, 32, device=dev, dtype=torch.float16) for _ in range(3))
    bench.compare(
        {"op": "scatter_linear_attention", "voxels": 200_000, "windows": 4000},
        {
            "scatter_linear_attention": lambda: scatter_linear_attention(q, k, v, offsets),
            "padded_softmax_attention": lambda: padded_window_attention(q, k, v, offsets),
        },
        baseline="padded_softmax_attention",
        device=dev,
        memory=False,
    )
    for n in (4096, 32768):
        q, k, v = (torch.rand(4, 8, n, 64, device=dev, dtype=torch.float16) for _ in range(3))
        bench.compare(
            {"op": "chunked_linear_attention", "B": 4, "H": 8, "N": n, "D": 64, "causal": True},
            {"chunked_linear_attention": partial(chunked_linear_attention, q, k, v, causal=True)},
            baseline="chunked_linear_attention",
            device=dev,
            memory=False,
        )


def _voxel_rows(bench: Bench) -> None:
    from benchmarks.voxel import DIM, FFN, GRID, HEADS, lidar_like_scene
    from tessera.shared_blocks.voxel import DSVTBackbone, FlatFormer, ScatterFormer

    common = dict(dim=DIM, heads=HEADS)
    models = {
        "dsvt": DSVTBackbone(
            **common, ffn_dim=FFN, set_size=36, num_blocks=2, window_shape=(1, 12, 12)
        ),
        "flatformer": FlatFormer(**common, group_size=144, window_shape=(13, 13), num_blocks=1),
        "scatterformer": ScatterFormer(
            **common, ffn_dim=FFN, window_shape=(1, 12, 12), num_blocks=4
        ),
    }
    n = 60_000
    coords = lidar_like_scene(n, seed=n).cuda()
    feats = torch.randn(n, DIM, device="cuda")

    def forward(model):
        with torch.inference_mode():
            return model(feats, coords, GRID)

    cases = {name: partial(forward, m.cuda().eval()) for name, m in models.items()}
    bench.compare({"pillars": n}, cases, baseline="dsvt", device="cuda", memory=False)


def target_lines(bench: Bench) -> list[str]:
    """One line per attention row the targets apply to: ratio of throughputs vs the target."""
    lines = []
    for row in bench.rows:
        params = row.params
        if "mode" not in params or params["N"] < TARGET_MIN_N:
            continue
        ours = next((c for c in row.cases if c.name == "triton"), None)
        if ours is None or not ours.ratio_to_baseline:
            lines.append(f"- {params}: triton failed")
            continue
        throughput = 1 / ours.ratio_to_baseline
        target = TARGETS[params["mode"]]
        verdict = "meets" if throughput >= target else "BELOW"
        lines.append(
            f"- {params['mode']} {params['dtype']} D={params['D']} N={params['N']} "
            f"causal={params['causal']}: {throughput:.2f}x SDPA flash ({verdict} {target}x)"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks gpu", description=__doc__)
    parser.add_argument("--skip-tests", action="store_true", help="benchmarks only")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / REPORT)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu-check: no GPU found (torch.cuda.is_available() is False); nothing to check.")
        return 0

    start = time.perf_counter()
    sections = [f"# GPU check\n\nMachine: {machine_info()}\n"]
    status = 0
    if not args.skip_tests:
        print("== GPU tests ==", flush=True)
        status, summary = run_gpu_tests()
        sections.append(f"## GPU tests (exit code {status})\n\n```\n{summary}\n```\n")

    bench = Bench("gpu_check", warmup=2, repeats=5)
    dtypes = (torch.float16, torch.bfloat16)
    for title, fn in (
        ("attention vs SDPA flash", partial(_attention_rows, bench, dtypes)),
        ("sparse and linear attention ops", partial(_sparse_rows, bench)),
        ("voxel backbones end to end", partial(_voxel_rows, bench)),
    ):
        elapsed = time.perf_counter() - start
        if elapsed > TIME_BUDGET_S:
            bench.note(
                f"{title}: skipped, {elapsed:.0f} s already spent (budget {TIME_BUDGET_S} s)"
            )
            continue
        print(f"== {title} ==", flush=True)
        fn()
    bench.note(f"total time {time.perf_counter() - start:.0f} s")
    targets = target_lines(bench)
    sections.append(
        "## Attention throughput targets\n\n"
        f"forward >= {TARGETS['fwd']}x, forward+backward >= {TARGETS['fwd+bwd']}x the SDPA "
        f"flash backend at N >= {TARGET_MIN_N} (throughput = SDPA time / Triton time).\n\n"
        + "\n".join(targets)
        + "\n"
    )
    sections.append("## Benchmarks\n\n" + bench.markdown().split("\n", 1)[1])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(sections))
    print(f"gpu-check: report written to {args.out}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
