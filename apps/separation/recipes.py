"""Training recipe of the shipped checkpoint (``make checkpoints``).

Generates the synthetic world of the recorded seed, fits ``configs/tiny.yaml`` on it in two
phases (constant learning rate, then resumed with a cosine decay to the final step), exports
the weights to ``checkpoints/separation-mossformer-tiny.safetensors``, evaluates them on the
world's test split with ``evaluate`` and writes the registry entry.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
import yaml

from tessera.apps.common.checkpoints import checkpoints_dir, sha256_of, write_registry_entry
from tessera.apps.common.cli import EvaluateRequest

NAME = "separation-mossformer-tiny"
CONFIG = Path(__file__).parent / "configs" / "tiny.yaml"
WORLD = {"seed": 0, "train": 300, "val": 20, "test": 40}
CONSTANT_STEPS = 600
MAX_STEPS = 2400


def synth_command(out: str = "world") -> str:
    sizes = " ".join(f"--{k} {WORLD[k]}" for k in ("train", "val", "test"))
    return f"tessera separation synth --out {out} --seed {WORLD['seed']} {sizes}"


def fit_args(world: str, workdir: str, max_steps: int) -> list[str]:
    return [
        "fit", "-c", str(CONFIG), f"--data.data={world}", f"--trainer.max_steps={max_steps}",
        f"--trainer.default_root_dir={workdir}", "--trainer.enable_progress_bar=false",
    ]  # fmt: skip


def fit(world: Path, workdir: Path, constant_steps: int, max_steps: int) -> Path:
    """Tiny config at a constant learning rate, then resumed with cosine decay; returns the
    last checkpoint."""
    from tessera.apps.separation.cli import main

    def last() -> Path:
        return max(workdir.rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)

    main([*fit_args(world, workdir, constant_steps), "--model.lr_schedule=constant"])
    main([*fit_args(world, workdir, max_steps), f"--ckpt_path={last()}"])
    return last()


def export(ckpt: Path, out: Path) -> Path:
    """Safetensors with the model config in its metadata, from a Lightning checkpoint."""
    from tessera.apps.separation import save_weights
    from tessera.apps.separation.module import SeparationModule

    module = SeparationModule.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True)
    hp = module.hparams
    config = {k: hp[k] for k in ("arch", "num_spks", "sample_rate", "net")}
    return save_weights(out, module.model, config)


def train(constant_steps: int = CONSTANT_STEPS, max_steps: int = MAX_STEPS) -> dict:
    """Re-train the shipped checkpoint and update its registry entry; returns the entry."""
    from tessera.apps.separation.cli import evaluate
    from tessera.datamodules.separation.synth import generate

    torch.set_num_threads(1)  # a shared CPU: spinning OpenMP threads cost more than they give
    with tempfile.TemporaryDirectory(prefix="tessera-sep-") as tmp:
        world = generate(Path(tmp) / "world", **WORLD)
        ckpt = fit(world, Path(tmp) / "run", constant_steps, max_steps)
        out = export(ckpt, checkpoints_dir() / f"{NAME}.safetensors")
        metrics = evaluate(EvaluateRequest(checkpoint=str(out), data=str(world), split="test"))
    entry = {
        "task": "separation",
        "config": "apps/separation/configs/tiny.yaml",
        "file": out.name,
        "sha256": sha256_of(out),
        "command": (
            f"{synth_command()} && tessera separation fit -c apps/separation/configs/tiny.yaml"
            f" --data.data world --trainer.max_steps {constant_steps} --model.lr_schedule"
            " constant && tessera separation fit -c apps/separation/configs/tiny.yaml"
            f" --data.data world --trainer.max_steps {max_steps} --ckpt_path <its last .ckpt>"
            " (all of it: python -m tessera.apps.checkpoints separation)"
        ),
        "data": {
            "world": "tessera separation synth",
            **WORLD,
            "sample_rate": 8000,
            "steps": {"constant_lr": constant_steps, "total": max_steps},
        },
        "metrics": {k: v for k, v in metrics.items() if k != "n"},
    }
    write_registry_entry(NAME, entry)
    print(f"{NAME}: {yaml.safe_dump(entry['metrics'])}", flush=True)
    return entry


if __name__ == "__main__":
    train()
