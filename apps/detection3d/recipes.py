"""Training recipe of the shipped checkpoint (``make checkpoints``).

Writes the synthetic KITTI-layout world of the recorded seed
(:mod:`tessera.datamodules.detection3d.synth`), fits ``configs/tiny.yaml`` (DSVT pillars +
CenterPoint) on its training split, exports ``checkpoints/detection3d-dsvt-tiny.safetensors``
and scores it with ``evaluate`` (KITTI AP, R40) on the recorded test split and on the test
splits of worlds of two other seeds nobody trained on. One CPU thread.

``python -m tessera.apps.detection3d.recipes [--work DIR]`` (or ``python -m
tessera.apps.checkpoints detection3d``); ``--export CKPT`` exports and scores a Lightning
checkpoint of an earlier run without fitting again.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
import yaml

from tessera.apps.common.checkpoints import checkpoints_dir, sha256_of, write_registry_entry
from tessera.apps.common.cli import EvaluateRequest

NAME = "detection3d-dsvt-tiny"
CONFIG = Path(__file__).parent / "configs" / "tiny.yaml"
WORLD = {"seed": 0, "train": 250, "val": 20, "test": 60}
EVAL_SEEDS = (101, 202)
SLICE = 20  # frames of the first evaluation world the registry test re-scores
MAX_STEPS = 2000
KEYS = [
    f"{c}_{m}_ap_{d}"
    for c in ("car", "pedestrian", "cyclist")
    for m in ("bev", "3d")
    for d in ("easy", "moderate", "hard")
]


def fit_args(world: Path, workdir: Path, max_steps: int, max_time: str | None) -> list[str]:
    args = [
        "fit",
        "-c",
        str(CONFIG),
        f"--data.data={world}",
        f"--trainer.max_steps={max_steps}",
        f"--trainer.default_root_dir={workdir}",
        "--trainer.enable_progress_bar=false",
        "--trainer.check_val_every_n_epoch=2",
        "--trainer.limit_val_batches=20",
    ]
    return args + ([f"--trainer.max_time={max_time}"] if max_time else [])


def train(
    workdir: str | Path | None = None,
    max_steps: int = MAX_STEPS,
    max_time: str | None = None,
    world: str | Path | None = None,
    out_dir: str | Path | None = None,
    register: bool = True,
) -> dict:
    """Re-train the shipped checkpoint and (``register``) update its registry entry.

    Args:
        workdir: scratch folder (worlds, Lightning logs); a temporary one by default.
        max_steps: optimiser steps (OneCycle schedule length).
        max_time: optional wall-clock limit (``DD:HH:MM:SS``).
        world: an already written world of the recorded seed and sizes.
        out_dir: where the safetensors goes (the package's ``checkpoints/`` by default).
        register: write the registry entry.

    Returns the entry (also when not registered).
    """
    from tessera.apps.detection3d import cli
    from tessera.datamodules.detection3d.synth import write_world

    torch.set_num_threads(1)
    workdir = Path(workdir or tempfile.mkdtemp(prefix="detection3d-recipe-"))
    world = Path(world) if world else write_world(workdir / "world", **WORLD)
    cli.main(fit_args(world, workdir / "fit", max_steps, max_time))
    ckpt = max((workdir / "fit").rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    return export_and_score(ckpt, workdir, world, out_dir, register)


def slice_world(out: str | Path) -> Path:
    """The first :data:`SLICE` test frames of the world of seed ``EVAL_SEEDS[0]`` (its test
    split is written first, so these are the same frames), for the registry test."""
    from tessera.datamodules.detection3d.synth import write_world

    return write_world(out, seed=EVAL_SEEDS[0], train=0, val=0, test=SLICE, progress=False)


def export_and_score(
    ckpt: str | Path,
    workdir: str | Path,
    world: str | Path,
    out_dir: str | Path | None = None,
    register: bool = True,
) -> dict:
    """Export a Lightning checkpoint of the recipe as safetensors, score it with ``evaluate``
    on the recorded test split, on the test splits of :data:`EVAL_SEEDS` worlds nobody
    trained on and on :func:`slice_world`, and (``register``) write the registry entry."""
    from tessera.apps.detection3d import api, cli
    from tessera.apps.detection3d.module import Detection3DModule
    from tessera.datamodules.detection3d.synth import write_world

    torch.set_num_threads(1)
    workdir, world = Path(workdir), Path(world)
    module = Detection3DModule.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True)
    steps = int(torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"])
    out = api.save(Path(out_dir or checkpoints_dir()) / f"{NAME}.safetensors", module)
    worlds = {"recorded": world, "slice": slice_world(workdir / "slice")}
    for seed in EVAL_SEEDS:
        worlds[f"seed{seed}"] = write_world(
            workdir / f"world{seed}", seed=seed, train=0, val=0, test=WORLD["test"]
        )
    scores = {
        name: cli.evaluate(EvaluateRequest(checkpoint=str(out), data=str(w), split="test"))
        for name, w in worlds.items()
    }
    metrics = {k: scores["recorded"][k] for k in KEYS}
    unseen = [scores[f"seed{seed}"]["car_bev_ap_moderate"] for seed in EVAL_SEEDS]
    for seed, value in zip(EVAL_SEEDS, unseen, strict=True):
        metrics[f"car_bev_ap_moderate_seed{seed}"] = value
    every = [metrics["car_bev_ap_moderate"], *unseen]
    metrics["car_bev_ap_moderate_seed_spread"] = round(max(every) - min(every), 4)
    metrics[f"car_bev_ap_moderate_seed{EVAL_SEEDS[0]}_first{SLICE}"] = scores["slice"][
        "car_bev_ap_moderate"
    ]
    sizes = " ".join(f"--{k} {WORLD[k]}" for k in ("train", "val", "test"))
    entry = {
        "task": "detection3d",
        "config": "apps/detection3d/configs/tiny.yaml",
        "file": out.name,
        "sha256": sha256_of(out),
        "command": (
            f"tessera detection3d synth --out world --seed {WORLD['seed']} {sizes} && "
            f"tessera detection3d fit -c apps/detection3d/configs/tiny.yaml --data.data world "
            f"--trainer.max_steps {steps}"
            " (all of it: python -m tessera.apps.detection3d.recipes)"
        ),
        "data": {
            "world": "tessera detection3d synth",
            **WORLD,
            "split": "test",
            "eval_seeds": list(EVAL_SEEDS),
            "steps": steps,
        },
        "metrics": metrics,
    }
    if register:
        write_registry_entry(NAME, entry)
    print(f"{NAME}: {yaml.safe_dump(metrics)}", flush=True)
    return entry


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m tessera.apps.detection3d.recipes", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--work", help="scratch folder (default: a temporary one)")
    parser.add_argument("--world", help="an already written world of the recorded seed")
    parser.add_argument("--steps", type=int, default=MAX_STEPS)
    parser.add_argument("--max-time", help="wall-clock limit DD:HH:MM:SS")
    parser.add_argument("--out-dir", help="where the weights go (default: checkpoints/)")
    parser.add_argument("--no-register", action="store_true", help="leave the registry alone")
    parser.add_argument("--export", metavar="CKPT", help="skip fitting: export this checkpoint")
    args = parser.parse_args(argv)
    if args.export:
        if not (args.work and args.world):
            parser.error("--export needs --work and --world")
        export_and_score(args.export, args.work, args.world, args.out_dir, not args.no_register)
    else:
        train(args.work, args.steps, args.max_time, args.world, args.out_dir, not args.no_register)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
