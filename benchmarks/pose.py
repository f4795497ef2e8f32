"""Pose app on CPU (fp32, inference).

* Latency per person crop (batch 1, no flip test) of SimpleBaseline ResNet-50 (the
  paper-size config ``psa-resnet50-coco.yaml``, 256x192) without PSA, with parallel PSA and
  with sequential PSA in every residual block, as Liu et al. (2021) add it; and the shipped
  tiny network (``psa-tiny.yaml``) with and without its head PSA. Each crop is the config's
  ``input_size`` (``[w, h]``; rows are labelled ``HxW``). The paper calls PSA's overhead
  small: the ratio to the no-PSA row is that overhead here. Because wall times on a shared
  machine follow its load, the same networks are also timed by the calling thread's CPU
  time, one thread, the cases interleaved round by round (:func:`interleaved_cpu_ms`): the
  overhead quoted is the ratio of those minima.
* Lifting throughput (frames/s: one centre frame lifted per window, 64 windows per call) of
  the tiny skeleton-aware space-time lifter for receptive fields T = 1, 27, 81, with and
  without ``DeformableAttention3D`` over the (time, joint) volume.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import yaml

from benchmarks.harness import Bench
from tessera.apps.pose.model import PoseLifter, PSAPoseNet

CONFIGS = Path(__file__).parents[1] / "apps" / "pose" / "configs"
WINDOWS = 64


def _no_grad(fn):
    def run():
        with torch.no_grad():
            return fn()

    return run


def _model_args(config: str) -> dict:
    return yaml.safe_load((CONFIGS / config).read_text())["model"]["init_args"]


def crop_for(config: str) -> tuple[torch.Tensor, str]:
    """A random ``(1, 3, H, W)`` crop at the config's ``input_size = [W, H]`` and its
    ``"HxW"`` label."""
    width, height = _model_args(config)["input_size"]
    return torch.rand(1, 3, height, width), f"{height}x{width}"


def _keypoint_net(config: str, **overrides) -> PSAPoseNet:
    hp = _model_args(config) | overrides
    return PSAPoseNet(
        hp["backbone"],
        False,
        17,
        hp["psa_mode"],
        hp["psa_placement"],
        tuple(hp["deconv_channels"]),
        hp["feature_index"],
    ).eval()


def interleaved_cpu_ms(cases: dict[str, Callable], rounds: int) -> dict[str, list[float]]:
    """CPU milliseconds of the calling thread per call of each case, one torch thread, the
    cases run in turn each round (after one warm-up call each), so a change of the machine's
    load hits every case alike and time spent waiting for a core is not counted."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for fn in cases.values():
            fn()
        times = {name: [] for name in cases}
        for _ in range(rounds):
            for name, fn in cases.items():
                start = time.thread_time_ns()
                fn()
                times[name].append((time.thread_time_ns() - start) / 1e6)
        return times
    finally:
        torch.set_num_threads(before)


def _overhead_note(label: str, times: dict[str, list[float]], baseline: str) -> str:
    base = min(times[baseline])
    parts = [
        f"{name} min {min(t):.1f} / median {statistics.median(t):.1f} ms "
        f"(x{min(t) / base:.3f} of {baseline} by the minima)"
        for name, t in times.items()
    ]
    rounds = len(times[baseline])
    return f"{label}, thread CPU time, 1 thread, {rounds} interleaved rounds: " + "; ".join(parts)


def run(bench: Bench) -> None:
    torch.manual_seed(0)
    load = Path("/proc/loadavg").read_text().split()[:3]
    bench.note(f"torch threads: {torch.get_num_threads()}; load average at start {' '.join(load)}")

    crop, size = crop_for("psa-resnet50-coco.yaml")
    nets = {m: _keypoint_net("psa-resnet50-coco.yaml", psa_mode=m) for m in ("none", "parallel")}
    if not bench.quick:
        nets["sequential"] = _keypoint_net("psa-resnet50-coco.yaml", psa_mode="sequential")
    paper_cases = {f"psa={m}": _no_grad(lambda n=n: n(crop)) for m, n in nets.items()}
    bench.compare(
        {"model": "ResNet-50 SimpleBaseline, PSA in every block", "crop": size},
        paper_cases,
        baseline="psa=none",
    )
    rounds = 3 if bench.quick else 15
    cpu = interleaved_cpu_ms(paper_cases, rounds)
    bench.note(_overhead_note(f"ResNet-50 SimpleBaseline {size}", cpu, "psa=none"))
    small, size = crop_for("psa-tiny.yaml")
    tiny = {m: _keypoint_net("psa-tiny.yaml", psa_mode=m) for m in ("none", "parallel")}
    tiny_cases = {f"psa={m}": _no_grad(lambda n=n: n(small)) for m, n in tiny.items()}
    bench.compare(
        {"model": "tiny (ResNet-18 stride 8, head PSA)", "crop": size},
        tiny_cases,
        baseline="psa=none",
    )
    cpu = interleaved_cpu_ms(tiny_cases, 10 * rounds)
    bench.note(_overhead_note(f"tiny {size}", cpu, "psa=none"))

    lifter = _model_args("lifter-tiny.yaml")
    rates = []
    for frames in (1, 27) if bench.quick else (1, 27, 81):
        x = torch.rand(WINDOWS, frames, 17, 2)
        cases = {}
        for deformable in (False, True):
            net = PoseLifter(
                frames,
                17,
                lifter["dim"],
                lifter["depth"],
                lifter["heads"],
                max_hop=lifter["max_hop"],
                deformable=deformable,
            ).eval()
            name = "space-time + deformable 3-D" if deformable else "space-time"
            cases[name] = _no_grad(lambda n=net, x=x: n(x))
        row = bench.compare(
            {"model": "lifter-tiny", "T": frames, "windows": WINDOWS},
            cases,
            baseline="space-time",
        )
        rates += [
            f"T={frames} {c.name}: {WINDOWS / c.median_s:.0f} frames/s"
            for c in row.cases
            if c.median_s
        ]
    bench.note("Lifting throughput (median): " + "; ".join(rates))
