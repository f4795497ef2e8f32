"""Training recipe of the shipped checkpoint (``make checkpoints``).

Writes the synthetic KITTI-layout world of the recorded seed
(:mod:`tessera.datamodules.detection3d.synth`), fits ``configs/tiny.yaml`` (DSVT pillars +
CenterPoint) on its training split, exports ``checkpoints/detection3d-dsvt-tiny.safetensors``
and scores it with ``evaluate`` (KITTI AP, R40) on the recorded test split and on the test
split of a world of another seed nobody trained on. One CPU thread.
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
EVAL_SEED = 101
MAX_STEPS = 1600
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
        "--trainer.check_val_every_n_epoch=4",
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
    from tessera.apps.detection3d import api, cli
    from tessera.apps.detection3d.module import Detection3DModule
    from tessera.datamodules.detection3d.synth import write_world

    torch.set_num_threads(1)
    workdir = Path(workdir or tempfile.mkdtemp(prefix="detection3d-recipe-"))
    world = Path(world) if world else write_world(workdir / "world", **WORLD)
    cli.main(fit_args(world, workdir / "fit", max_steps, max_time))
    ckpt = max((workdir / "fit").rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    module = Detection3DModule.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True)
    out = api.save(Path(out_dir or checkpoints_dir()) / f"{NAME}.safetensors", module)
    other = write_world(
        workdir / f"world{EVAL_SEED}", seed=EVAL_SEED, train=0, val=0, test=WORLD["test"]
    )
    scores = {
        name: cli.evaluate(EvaluateRequest(checkpoint=str(out), data=str(w), split="test"))
        for name, w in (("recorded", world), (f"seed{EVAL_SEED}", other))
    }
    metrics = {k: scores["recorded"][k] for k in KEYS}
    metrics[f"car_bev_ap_moderate_seed{EVAL_SEED}"] = scores[f"seed{EVAL_SEED}"][
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
            f"--trainer.max_steps {max_steps}"
            " (all of it: python -m tessera.apps.checkpoints detection3d)"
        ),
        "data": {
            "world": "tessera detection3d synth",
            **WORLD,
            "split": "test",
            "eval_seed": EVAL_SEED,
            "steps": int(module.global_step) if hasattr(module, "global_step") else max_steps,
        },
        "metrics": metrics,
    }
    if register:
        write_registry_entry(NAME, entry)
    print(f"{NAME}: {yaml.safe_dump(metrics)}", flush=True)
    return entry
