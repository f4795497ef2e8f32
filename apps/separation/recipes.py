"""Training recipe of the shipped checkpoint (``make checkpoints``).

Generates the synthetic world of the recorded seed, fits ``configs/tiny.yaml`` on it in phases
(a constant learning rate, then resumed runs with a cosine decay to each phase's end), exports
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
# (last step, learning-rate schedule, extra options) of each fit; each later phase resumes the
# previous one. The last phase fine-tunes on dynamic mixtures of the training sources, which
# closes most of the gap between training and unheard talkers.
DYNAMIC_MIXING = ("--data.dynamic_mixing=true", "--data.dm_epoch_size=1000")
PHASES = (
    (600, "constant", ()),
    (2400, "cosine", ()),
    (3600, "cosine", DYNAMIC_MIXING),
    (4800, "cosine", DYNAMIC_MIXING),
    (7200, "cosine", DYNAMIC_MIXING),
)


def synth_command(out: str = "world") -> str:
    sizes = " ".join(f"--{k} {WORLD[k]}" for k in ("train", "val", "test"))
    return f"tessera separation synth --out {out} --seed {WORLD['seed']} {sizes}"


def fit_args(world: str, workdir: str, max_steps: int) -> list[str]:
    return [
        "fit", "-c", str(CONFIG), f"--data.data={world}", f"--trainer.max_steps={max_steps}",
        f"--trainer.default_root_dir={workdir}", "--trainer.enable_progress_bar=false",
    ]  # fmt: skip


def fit(world: Path, workdir: Path, phases=PHASES) -> Path:
    """Fit the tiny config phase by phase; returns the last checkpoint."""
    from tessera.apps.separation.cli import main

    def last() -> Path:
        return max(workdir.rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)

    for i, (steps, schedule, extra) in enumerate(phases):
        resume = [f"--ckpt_path={last()}"] if i else []
        args = fit_args(world, workdir, steps)
        main([*args, f"--model.lr_schedule={schedule}", *extra, *resume])
    return last()


def phases_command(phases=PHASES) -> str:
    fit = "tessera separation fit -c apps/separation/configs/tiny.yaml --data.data world"
    return " && ".join(
        f"{fit} --trainer.max_steps {steps} --model.lr_schedule {schedule}"
        + "".join(f" {e}" for e in extra)
        + (" --ckpt_path <last .ckpt>" if i else "")
        for i, (steps, schedule, extra) in enumerate(phases)
    )


def export(ckpt: Path, out: Path) -> Path:
    """Safetensors with the model config in its metadata, from a Lightning checkpoint."""
    from tessera.apps.separation import save_weights
    from tessera.apps.separation.module import SeparationModule

    module = SeparationModule.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True)
    hp = module.hparams
    config = {k: hp[k] for k in ("arch", "num_spks", "sample_rate", "net")}
    return save_weights(out, module.model, config)


def register(out: Path, world: Path, phases=PHASES) -> dict:
    """Evaluate the exported ``out`` on ``world``'s test split and write its registry entry."""
    from tessera.apps.separation.cli import evaluate

    metrics = evaluate(EvaluateRequest(checkpoint=str(out), data=str(world), split="test"))
    entry = {
        "task": "separation",
        "config": "apps/separation/configs/tiny.yaml",
        "file": out.name,
        "sha256": sha256_of(out),
        "command": (
            f"{synth_command()} && {phases_command(phases)}"
            " (all of it: python -m tessera.apps.checkpoints separation)"
        ),
        "data": {
            "world": "tessera separation synth", **WORLD, "sample_rate": 8000,
            "phases": [[steps, schedule, *extra] for steps, schedule, extra in phases],
        },
        "metrics": {k: v for k, v in metrics.items() if k != "n"},
    }  # fmt: skip
    write_registry_entry(NAME, entry)
    print(f"{NAME}: {yaml.safe_dump(entry['metrics'])}", flush=True)
    return entry


def train(phases=PHASES) -> dict:
    """Re-train the shipped checkpoint and update its registry entry; returns the entry."""
    from tessera.datamodules.separation.synth import generate

    torch.set_num_threads(1)  # a shared CPU: spinning OpenMP threads cost more than they give
    with tempfile.TemporaryDirectory(prefix="tessera-sep-") as tmp:
        world = generate(Path(tmp) / "world", **WORLD)
        ckpt = fit(world, Path(tmp) / "run", phases)
        out = export(ckpt, checkpoints_dir() / f"{NAME}.safetensors")
        return register(out, world, phases)


if __name__ == "__main__":
    train()
