"""Shipped checkpoints (``make checkpoints``): the tiny PSA keypoint model and the tiny
lifter, trained on the synthetic world, exported as safetensors with registry entries whose
metrics come from ``evaluate`` on the world's test split (and a world of another seed).

    python -m tessera.apps.pose.recipes [--only psa|lifter] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

CONFIGS = Path(__file__).parent / "configs"
WORLD = {"seed": 0, "train": 2000, "val": 60, "test": 200, "clips": [60, 4, 20], "clip_frames": 200}
HELD_OUT_SEED = 101
CHECKPOINTS = {
    "pose-psa-tiny": ("psa-tiny.yaml", "coco", ("oks_ap", "oks_ap50", "pck_0.05")),
    "pose-lifter-tiny": ("lifter-tiny.yaml", "h36m", ("mpjpe_mm", "p_mpjpe_mm")),
}


def _world(work: Path, seed: int) -> Path:
    from tessera.datamodules.pose.synth import generate

    out = work / f"world-{seed}"
    if not (out / "h36m" / "cameras.json").exists():
        w = WORLD | {"seed": seed}
        generate(out, seed, w["train"], w["val"], w["test"], tuple(w["clips"]), w["clip_frames"])
    return out


def _evaluate(checkpoint: Path, data: Path, keys) -> dict:
    from tessera.apps.common.cli import EvaluateRequest
    from tessera.apps.pose.cli import evaluate

    values = evaluate(EvaluateRequest(str(checkpoint), str(data), split="test", batch_size=64))
    return {k: round(float(values[k]), 4) for k in keys}


def train(only: str | None = None, work: str = "work/pose-checkpoints") -> None:
    """Train, export and register the shipped pose checkpoints."""
    from tessera.apps.common.checkpoints import checkpoints_dir, sha256_of, write_registry_entry
    from tessera.apps.pose.api import export, load_module
    from tessera.apps.pose.cli import main

    torch.set_num_threads(1)
    work_dir = Path(work)
    world = _world(work_dir, WORLD["seed"])
    held_out = _world(work_dir, HELD_OUT_SEED)
    for name, (config, part, keys) in CHECKPOINTS.items():
        if only and only not in name:
            continue
        run = work_dir / name
        argv = [
            "fit",
            "-c",
            str(CONFIGS / config),
            f"--data.init_args.data_root={world / part}",
            f"--trainer.default_root_dir={run}",
            "--trainer.enable_progress_bar=false",
        ]
        assert main(argv) == 0
        last = sorted(run.rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)[-1]
        target = checkpoints_dir() / f"{name}.safetensors"
        export(load_module(last), target)
        metrics = _evaluate(target, world / part, keys)
        other = _evaluate(target, held_out / part, keys)
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
                    f"metrics_seed_{HELD_OUT_SEED}": other,
                },
                "metrics": metrics,
            },
        )
        print(json.dumps({name: metrics, f"seed_{HELD_OUT_SEED}": other}), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tessera.apps.pose.recipes")
    parser.add_argument("--only", choices=["psa", "lifter"], default=None)
    parser.add_argument("--work", default="work/pose-checkpoints")
    args = parser.parse_args(argv)
    train(args.only, args.work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
