"""Training recipe of the shipped checkpoint (``make checkpoints``).

Generates the training world of the recorded seed (espeak-ng + flite + festival voices with
recording-channel augmentation, see :mod:`tessera.datamodules.separation.synth`), fits
``configs/tiny.yaml`` on dynamic mixtures of its training sources (speakers never paired with
themselves) in phases (a constant learning rate, then a resumed run with a cosine decay),
exports the weights to ``checkpoints/separation-mossformer-tiny.safetensors``, and evaluates
them with ``evaluate`` on worlds nobody trained on: the test splits (unheard voices) of
:data:`EVAL_SEEDS`, whose spread is reported, and the held-out English festival/flite
speakers (``voices="english"``), the local proxy of natural recorded voices. 23 CPU minutes
measured on one thread; about 43 on 2026-12-03, when a step cost 0.64 s instead of 0.34, and
30 on 2026-12-04 (0.45 s/step).
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import torch
import yaml

from tessera.apps.common.checkpoints import checkpoints_dir, sha256_of, write_registry_entry
from tessera.apps.common.cli import EvaluateRequest

NAME = "separation-mossformer-tiny"
CONFIG = Path(__file__).parent / "configs" / "tiny.yaml"
WORLD = {"seed": 0, "train": 500, "val": 20, "test": 0}
EVAL_SEEDS = (101, 102)  # test worlds of unheard voices, seeds nobody trained on
EVAL_MIXTURES = 100
ENGLISH_SEED = 103  # held-out English festival/flite speakers
# (last step, learning-rate schedule, extra options) of each fit; each later phase resumes the
# previous one's last checkpoint. Every phase trains on dynamic mixtures of the training sources.
# Checkpoints are written at validations, so every phase ends on one (a multiple of the config's
# val_check_interval; checked by fit).
DYNAMIC_MIXING = (
    "--data.dynamic_mixing=true", "--data.dm_epoch_size=1000", "--data.cache_mb=256",
)  # fmt: skip
PHASES = (
    (250, "constant", DYNAMIC_MIXING),
    (4000, "cosine", DYNAMIC_MIXING),
)


def synth_command(out: str = "world") -> str:
    sizes = " ".join(f"--{k} {WORLD[k]}" for k in ("train", "val", "test"))
    return f"tessera separation synth --out {out} --seed {WORLD['seed']} {sizes}"


def fit_args(world: str, workdir: str, max_steps: int, config: Path = CONFIG) -> list[str]:
    return [
        "fit", "-c", str(config), f"--data.data={world}", f"--trainer.max_steps={max_steps}",
        f"--trainer.default_root_dir={workdir}", "--trainer.enable_progress_bar=false",
    ]  # fmt: skip


def last_checkpoint(workdir: Path) -> Path:
    return max(workdir.rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)


def fit(world: Path, workdir: Path, phases=PHASES) -> Path:
    """Fit the tiny config phase by phase; returns the last checkpoint."""
    from tessera.apps.separation.cli import main

    interval = yaml.safe_load(CONFIG.read_text())["trainer"]["val_check_interval"]
    for steps, *_ in phases:
        if steps % interval:
            raise ValueError(
                f"a phase ending at step {steps} would lose its last {steps % interval} steps: "
                f"checkpoints are written at validations (every {interval} steps in {CONFIG.name})"
            )
    for i, (steps, schedule, extra) in enumerate(phases):
        resume = [f"--ckpt_path={last_checkpoint(workdir)}"] if i else []
        args = fit_args(world, workdir, steps)
        main([*args, f"--model.lr_schedule={schedule}", *extra, *resume])
    return last_checkpoint(workdir)


def phases_command(phases=PHASES) -> str:
    fit = "tessera separation fit -c apps/separation/configs/tiny.yaml --data.data world"
    return " && ".join(
        f"{fit} --trainer.max_steps {steps} --model.lr_schedule {schedule}"
        + "".join(f" {e}" for e in extra)
        + (" --ckpt_path <last .ckpt>" if i else "")
        for i, (steps, schedule, extra) in enumerate(phases)
    )


def export(ckpt: Path, out: Path) -> Path:
    """The app's weight file (hparams and sample rate in its metadata) from a Lightning
    checkpoint."""
    from tessera.apps.separation.api import save_weights
    from tessera.apps.separation.module import SeparationModule

    module = SeparationModule.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True)
    return save_weights(out, module)


def evaluation_worlds(root: Path) -> dict[str, Path]:
    """The worlds the shipped checkpoint is scored on (never trained on)."""
    from tessera.datamodules.separation.synth import generate

    worlds = {
        f"seed{seed}": generate(root / f"seed{seed}", seed=seed, train=0, val=0,
                                test=EVAL_MIXTURES)
        for seed in EVAL_SEEDS
    }  # fmt: skip
    worlds["english"] = generate(
        root / "english", seed=ENGLISH_SEED, train=0, val=0, test=EVAL_MIXTURES, voices="english"
    )
    return worlds


def score(out: Path, worlds: dict[str, Path]) -> dict:
    """``evaluate`` metrics per world plus the mean and spread over the seeded test worlds."""
    from tessera.apps.separation.cli import evaluate

    per_world = {
        name: evaluate(EvaluateRequest(checkpoint=str(out), data=str(world), split="test"))
        for name, world in worlds.items()
    }
    seeded = [per_world[f"seed{s}"]["si_sdri"] for s in EVAL_SEEDS]
    return {
        "si_sdri": round(statistics.mean(seeded), 3),
        "si_sdri_seed_spread": round(max(seeded) - min(seeded), 3),
        "si_sdri_english_heldout": per_world["english"]["si_sdri"],
        "per_world": per_world,
    }


def register(out: Path, metrics: dict, phases=PHASES) -> dict:
    """Write the registry entry of the exported ``out`` with its :func:`score` ``metrics``
    (the summary as ``metrics``, each evaluation world's ``evaluate`` output as
    ``other_seeds``)."""
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
            "evaluation": {
                "seeds": list(EVAL_SEEDS), "mixtures": EVAL_MIXTURES, "split": "test",
                "english_heldout": f"--voices english --seed {ENGLISH_SEED}",
            },
        },
        "metrics": {k: v for k, v in metrics.items() if k != "per_world"},
        "other_seeds": metrics["per_world"],
    }  # fmt: skip
    write_registry_entry(NAME, entry)
    print(f"{NAME}: {yaml.safe_dump(entry['metrics'])}", flush=True)
    return entry


def train(phases=PHASES, workdir: str | Path | None = None) -> dict:
    """Re-train the shipped checkpoint and update its registry entry; returns the entry."""
    from tessera.datamodules.separation.synth import generate

    torch.set_num_threads(1)  # a shared CPU: spinning OpenMP threads cost more than they give
    with tempfile.TemporaryDirectory(prefix="tessera-sep-") as tmp:
        root = Path(workdir or tmp)
        world = generate(root / "world", **WORLD)
        ckpt = fit(world, root / "run", phases)
        out = export(ckpt, checkpoints_dir() / f"{NAME}.safetensors")
        return register(out, score(out, evaluation_worlds(root / "eval")), phases)


if __name__ == "__main__":
    train()
