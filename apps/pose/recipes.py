"""Shipped checkpoints (``make checkpoints``): the tiny PSA keypoint model and the tiny
lifter, trained on the synthetic world, exported as safetensors with registry entries whose
metrics come from ``evaluate`` on the world's test split, on a world of a seed nobody trained
on, and on small test slices of both seeds (what the checkpoint test re-evaluates quickly).

    python -m tessera.apps.pose.recipes [--only psa|lifter] [--work DIR] [--score-only]

``--score-only`` re-scores and re-registers the already exported files without training.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

CONFIGS = Path(__file__).parent / "configs"
WORLD = {"seed": 0, "train": 4000, "val": 60, "test": 200, "clips": [60, 4, 20], "clip_frames": 200}
HELD_OUT_SEED = 101
# Small test-only worlds (40 images, 4 lifting clips of 100 frames) of both seeds.
SLICE = {"train": 0, "val": 0, "test": 40, "clips": [0, 0, 4], "clip_frames": 100}
CHECKPOINTS = {
    "pose-psa-tiny": ("psa-tiny.yaml", "coco", ("oks_ap", "oks_ap50", "pck_0.05")),
    "pose-lifter-tiny": ("lifter-tiny.yaml", "h36m", ("mpjpe_mm", "p_mpjpe_mm")),
}


def world(out: Path, seed: int, sizes: dict = WORLD) -> Path:
    """The synthetic world of ``seed`` with the split sizes of ``sizes`` (cached in ``out``)."""
    from tessera.datamodules.pose.synth import generate

    if not (out / "h36m" / "cameras.json").exists():
        generate(
            out,
            seed,
            sizes["train"],
            sizes["val"],
            sizes["test"],
            tuple(sizes["clips"]),
            sizes["clip_frames"],
        )
    return out


def score(checkpoint, data: Path, keys) -> dict:
    """``evaluate`` of ``checkpoint`` on ``data``'s test split, rounded as the registry."""
    from tessera.apps.common.cli import EvaluateRequest
    from tessera.apps.pose.cli import evaluate

    values = evaluate(EvaluateRequest(str(checkpoint), str(data), split="test", batch_size=64))
    return {k: round(float(values[k]), 4) for k in keys}


def _fit(config: str, data: Path, run: Path) -> Path:
    from tessera.apps.pose.cli import main

    argv = [
        "fit",
        "-c",
        str(CONFIGS / config),
        f"--data.init_args.data_root={data}",
        f"--trainer.default_root_dir={run}",
        "--trainer.enable_progress_bar=false",
        # validation metrics per 500 steps in <run>/lightning_logs/version_*/metrics.csv
        "--trainer.logger=lightning.pytorch.loggers.CSVLogger",
        f"--trainer.logger.save_dir={run}",
    ]
    assert main(argv) == 0
    return sorted(run.rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)[-1]


def register(name: str, work_dir: Path) -> dict:
    """Score the exported ``checkpoints/<name>.safetensors`` and write its registry entry."""
    from tessera.apps.common.checkpoints import checkpoints_dir, sha256_of, write_registry_entry

    config, part, keys = CHECKPOINTS[name]
    target = checkpoints_dir() / f"{name}.safetensors"
    seeds = (WORLD["seed"], HELD_OUT_SEED)
    full = {s: score(target, world(work_dir / f"world-{s}", s) / part, keys) for s in seeds}
    sliced = {
        s: score(target, world(work_dir / f"slice-{s}", s, SLICE) / part, keys) for s in seeds
    }
    command = f"python -m tessera.apps.pose.recipes --only {name.split('-')[1]}"
    write_registry_entry(
        name,
        {
            "task": "pose",
            "config": f"apps/pose/configs/{config}",
            "file": target.name,
            "sha256": sha256_of(target),
            "command": command,
            "data": {
                "world": f"tessera pose synth (recipes.WORLD) -> {part}/",
                **WORLD,
                "split": "test",
                "slice": {**SLICE, "metrics": sliced},
            },
            "metrics": full[WORLD["seed"]],
            "other_seeds": {HELD_OUT_SEED: full[HELD_OUT_SEED]},
        },
    )
    return {"metrics": full, "slice": sliced}


def train(only: str | None = None, work: str = "work/pose-checkpoints", fit: bool = True) -> None:
    """Train, export and register the shipped pose checkpoints."""
    from tessera.apps.common.checkpoints import checkpoints_dir
    from tessera.apps.pose.api import export, load_module

    torch.set_num_threads(1)
    work_dir = Path(work)
    for name, (config, part, _) in CHECKPOINTS.items():
        if only and only not in name:
            continue
        if fit:
            data = world(work_dir / f"world-{WORLD['seed']}", WORLD["seed"]) / part
            last = _fit(config, data, work_dir / name)
            export(load_module(last), checkpoints_dir() / f"{name}.safetensors")
        print(json.dumps({name: register(name, work_dir)}), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tessera.apps.pose.recipes")
    parser.add_argument("--only", choices=["psa", "lifter"], default=None)
    parser.add_argument("--work", default="work/pose-checkpoints")
    parser.add_argument("--score-only", action="store_true", help="re-score, do not train")
    args = parser.parse_args(argv)
    train(args.only, args.work, fit=not args.score_only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
