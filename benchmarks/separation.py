"""Speech separation: CPU real-time factor, memory vs audio length, MossFormer vs Conv-TasNet.

- RTF (processing time / audio duration) at 8 kHz of the tiny config, its parameter-matched
  Conv-TasNet and the paper-size MossFormer (L), one forward pass, with 1 and with 2 torch
  threads (each row says which).
- Peak memory vs audio length (5 s .. 10 min) for the chunked overlap-add separator against a
  single whole-file forward pass (which grows with the length, so it stops at 60 s).
- MossFormer (``tiny.yaml``) vs torchaudio Conv-TasNet (``convtasnet_tiny.yaml``) at matched
  parameter count: each trained by the app's own ``fit`` (the recipe's dynamic mixing, cosine
  schedule) for the same number of steps from :data:`SEEDS`, then scored by ``evaluate`` on
  the test split (unheard voices) of a fresh world (needs espeak-ng, flite, festival). The
  verdict (:func:`verdict`) names a winner only when the means differ by more than the
  seed-to-seed spread; otherwise it says "no difference".
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml

from tessera.apps.separation.inference import Separator
from tessera.apps.separation.model import build_model

RATE = 8000
CONFIGS = Path(__file__).resolve().parents[1] / "apps" / "separation" / "configs"
THREADS = (1, 2)
TRAIN_THREADS = 1  # the comparison trains on one thread (the other core may be busy)
SEEDS = (0, 1, 2)
PAIR = ("tiny", "convtasnet_tiny")  # MossFormer first, Conv-TasNet second
# Training budget (steps of batch 4 x 1.5 s) and world of the comparison, per mode.
BUDGET = {
    "quick": {"steps": 100, "world": {"seed": 7, "train": 60, "val": 2, "test": 20}},
    "full": {"steps": 500, "world": {"seed": 7, "train": 500, "val": 2, "test": 100}},
}


def _model(config: str) -> tuple[torch.nn.Module, dict]:
    cfg = yaml.safe_load((CONFIGS / f"{config}.yaml").read_text())["model"]
    return build_model(cfg["arch"], cfg["num_spks"], cfg["net"]).eval(), cfg


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _rtf_rows(bench) -> None:
    seconds = 1 if bench.quick else 4
    audio = torch.randn(1, RATE * seconds) * 0.1
    models = {config: _model(config)[0] for config in (*PAIR, "mossformer_l")}
    before = torch.get_num_threads()
    try:
        for threads in THREADS:
            torch.set_num_threads(threads)
            cases = {}
            for config, model in models.items():

                def run(model=model):
                    with torch.no_grad():
                        model(audio)

                cases[f"{config} ({_params(model) / 1e6:.3g} M)"] = run
            row = bench.compare(
                {"threads": threads, "audio_s": seconds, "rate": RATE},
                cases,
                baseline=next(iter(cases)),
            )
            for r in row.cases:
                if r.median_s:
                    r.extra["rtf"] = r.median_s / seconds
    finally:
        torch.set_num_threads(before)


def _memory_rows(bench) -> None:
    model, _ = _model("tiny")
    separator = Separator(model, RATE, 2, chunk_seconds=4.0, overlap_seconds=1.0)
    lengths = (5, 60) if bench.quick else (5, 30, 60, 300, 600)
    for seconds in lengths:
        audio = torch.randn(RATE * seconds) * 0.1
        cases = {"chunked overlap-add": lambda a=audio: separator.separate_waveform(a)}
        if seconds <= 60:

            def whole(a=audio):
                with torch.no_grad():
                    model(a[None])

            cases["whole file"] = whole
        row = bench.compare(
            {"threads": torch.get_num_threads(), "audio_s": seconds},
            cases,
            baseline="chunked overlap-add",
        )
        for r in row.cases:
            if r.median_s:
                r.extra["rtf"] = r.median_s / seconds


def verdict(scores: dict[str, list[float]]) -> str:
    """Which of two configs separates better, from their per-seed SI-SDRi values: a winner
    only when the means differ by more than the larger seed-to-seed spread (max - min),
    "no difference" otherwise."""
    (a, xs), (b, ys) = scores.items()
    diff = statistics.mean(xs) - statistics.mean(ys)
    spread = max(max(xs) - min(xs), max(ys) - min(ys))
    if abs(diff) <= spread:
        return (
            f"no difference: the means differ by {diff:+.2f} dB, inside the seed spread "
            f"{spread:.2f} dB"
        )
    return (
        f"{a if diff > 0 else b} ahead by {abs(diff):.2f} dB (more than the seed spread "
        f"{spread:.2f} dB)"
    )


def _fit_and_score(config: str, world: Path, steps: int, seed: int, root: Path) -> dict:
    """The app's ``fit`` (recipe options) for ``steps`` from ``seed``, then ``evaluate`` on
    the world's test split; returns the metrics plus the training wall time."""
    from tessera.apps.common.cli import EvaluateRequest
    from tessera.apps.separation.cli import evaluate, main
    from tessera.apps.separation.recipes import DYNAMIC_MIXING, export, fit_args, last_checkpoint

    workdir = root / f"{config}-seed{seed}"
    start = time.perf_counter()
    main([
        *fit_args(str(world), str(workdir), steps, CONFIGS / f"{config}.yaml"),
        f"--seed_everything={seed}", f"--trainer.val_check_interval={steps}", *DYNAMIC_MIXING,
    ])  # fmt: skip
    seconds = time.perf_counter() - start
    weights = export(last_checkpoint(workdir), workdir / f"{config}.safetensors")
    metrics = evaluate(EvaluateRequest(str(weights), str(world), "test"))
    return metrics | {"train_s": seconds}


def _training_rows(bench) -> None:
    from tessera.datamodules.separation.synth import generate, missing_voices

    if missing_voices():
        bench.note(f"MossFormer vs Conv-TasNet skipped: missing {' '.join(missing_voices())}")
        return
    budget = BUDGET["quick" if bench.quick else "full"]
    steps, spec = budget["steps"], budget["world"]
    params = {config: _params(_model(config)[0]) for config in PAIR}
    scores: dict[str, list[float]] = {config: [] for config in PAIR}
    before = torch.get_num_threads()
    torch.set_num_threads(TRAIN_THREADS)
    try:
        with tempfile.TemporaryDirectory(prefix="tessera-sep-bench-") as tmp:
            world = generate(Path(tmp) / "world", **spec)
            for seed in SEEDS:
                for config in PAIR:
                    m = _fit_and_score(config, world, steps, seed, Path(tmp))
                    scores[config].append(m["si_sdri"])
                    bench.note(
                        f"{config} ({params[config] / 1e3:.1f} k params), seed {seed}, {steps} "
                        f"steps: test SI-SDRi {m['si_sdri']:.2f} dB, SDRi {m['sdri']:.2f} dB "
                        f"({m['train_s'] / steps:.2f} s/step wall, {TRAIN_THREADS} thread)"
                    )
    finally:
        torch.set_num_threads(before)
    summary = "; ".join(
        f"{c} mean {statistics.mean(v):.2f} dB (seeds {min(v):.2f}..{max(v):.2f})"
        for c, v in scores.items()
    )
    bench.note(
        f"MossFormer vs Conv-TasNet at matched size, budget {steps} steps of batch 4 x 1.5 s "
        f"dynamic mixtures (cosine lr) per seed, seeds {list(SEEDS)}, scored on "
        f"{spec['test']} test mixtures of unheard voices of a fresh world (seed {spec['seed']}, "
        f"{spec['train']} training mixtures): {summary}. Verdict: {verdict(scores)}"
    )


def run(bench) -> None:
    torch.manual_seed(0)
    load = Path("/proc/loadavg").read_text().split()[:3]
    bench.note(
        f"torch threads: {torch.get_num_threads()} (RTF rows: the row's `threads`); load "
        f"average at start {' '.join(load)} (other jobs share the 2 cores); RTF = time / "
        "audio duration"
    )
    _rtf_rows(bench)
    _memory_rows(bench)
    _training_rows(bench)
