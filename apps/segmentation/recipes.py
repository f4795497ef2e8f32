"""Training recipes of the shipped checkpoints (``make checkpoints``).

Each recipe generates the synthetic world of the recorded seed, runs ``tessera segmentation
fit`` with the tiny config (grounding: then picks the mask threshold and the no-referent
minimum area on the val split), exports the weights to ``checkpoints/<name>.safetensors``,
evaluates them on the world's test split and writes the registry entry.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import yaml

from tessera.apps.common.checkpoints import checkpoints_dir, sha256_of, write_registry_entry
from tessera.apps.common.cli import EvaluateRequest

CONFIGS = Path(__file__).parent / "configs"
WORLD = {"seed": 0, "splits": {"train": 3000, "val": 100, "test": 300}, "size": 64}
RECIPES = {
    "segmentation-semantic-tiny": {"config": "semantic-tiny.yaml", "data": ""},
    "segmentation-grounding-tiny": {"config": "grounding-tiny.yaml", "data": "grounding"},
}
SEMANTIC_DATA = (
    "layout",
    "num_classes",
    "ignore_index",
    "reduce_zero_label",
    "binary",
    "scale",
    "size",
)
GROUNDING_DATA = ("format", "size")


def _data_settings(config: dict) -> dict:
    args = config["data"]["init_args"]
    keys = GROUNDING_DATA if "Grounding" in config["data"]["class_path"] else SEMANTIC_DATA
    return {k: args[k] for k in keys if k in args}


def train_one(name: str, world: Path, workdir: Path, max_steps: int | None = None) -> dict:
    """Fit, export and evaluate one checkpoint; returns its registry entry."""
    from tessera.apps.segmentation.api import export, load_module
    from tessera.apps.segmentation.cli import calibrate_grounding, evaluate, main
    from tessera.datamodules.segmentation import GroundingDataModule

    recipe = RECIPES[name]
    config_path = CONFIGS / recipe["config"]
    config = yaml.safe_load(config_path.read_text())
    argv = [
        "fit",
        "-c",
        str(config_path),
        f"--data.init_args.data_root={world / recipe['data']}",
        f"--trainer.default_root_dir={workdir}",
        "--trainer.enable_progress_bar=false",
    ]
    if max_steps is not None:
        argv.append(f"--trainer.max_steps={max_steps}")
    main(argv)
    ckpt = sorted(workdir.rglob("*.ckpt"), key=os.path.getmtime)[-1]
    module, _ = load_module(ckpt)
    if module.mode == "grounding":  # threshold and no-referent min area from the val split
        datamodule = GroundingDataModule(str(world / recipe["data"]), batch_size=64)
        print(f"{name}: calibrated on val: {calibrate_grounding(module, datamodule)}")
    out = export(module, checkpoints_dir() / f"{name}.safetensors", _data_settings(config))
    metrics = evaluate(EvaluateRequest(checkpoint=str(out), data=str(world), split="test"))
    command = (
        f"tessera segmentation synth --out world --seed {WORLD['seed']} "
        + " ".join(f"--{k} {v}" for k, v in WORLD["splits"].items())
        + f" && tessera segmentation fit -c apps/segmentation/configs/{recipe['config']}"
        + f" --data.init_args.data_root {Path('world') / recipe['data']}"
        + " (or: python -m tessera.apps.checkpoints segmentation)"
    )
    return {
        "task": "segmentation",
        "config": f"apps/segmentation/configs/{recipe['config']}",
        "file": out.name,
        "sha256": sha256_of(out),
        "command": command,
        "data": {"world": "tessera segmentation synth", **WORLD},
        "metrics": {k: round(v, 4) for k, v in metrics.items()},
    }


def train(names: list[str] | None = None) -> None:
    """Re-train the shipped segmentation checkpoints (all by default)."""
    import torch

    from tessera.datamodules.segmentation.synth import generate

    torch.set_num_threads(1)  # small convolutions: one thread is fastest on a shared CPU
    with tempfile.TemporaryDirectory(prefix="tessera-seg-") as tmp:
        world = generate(Path(tmp) / "world", WORLD["seed"], WORLD["splits"], WORLD["size"])
        for name in names or list(RECIPES):
            entry = train_one(name, world, Path(tmp) / name)
            write_registry_entry(name, entry)
            print(f"{name}: {entry['metrics']}", flush=True)


if __name__ == "__main__":
    train()
