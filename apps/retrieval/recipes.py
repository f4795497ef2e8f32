"""Training recipe of the shipped checkpoints (``make checkpoints``).

Writes the synthetic world of the recorded seed (:mod:`tessera.datamodules.retrieval.synth`),
fits ``configs/tiny.yaml`` twice with the same budget (steps, batch, learning rates, seed):
with X-Pool pooling and with mean pooling (CLIP4Clip meanP), exports both to
``checkpoints/retrieval-{xpool,meanp}-tiny.safetensors`` and scores them with ``evaluate`` on
the test split of the recorded seed and of :data:`EVAL_SEEDS` (worlds nobody trained on);
the registry records the recorded-seed metrics and the spread over seeds. Runs on one thread.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml

from tessera.apps.common.checkpoints import checkpoints_dir, sha256_of, write_registry_entry
from tessera.apps.common.cli import EvaluateRequest

CONFIG = Path(__file__).parent / "configs" / "tiny.yaml"
WORLD = {"seed": 0, "train": 600, "val": 50, "test": 100}
EVAL_SEEDS = (101, 102)
STEPS = 1500
VARIANTS = {"retrieval-xpool-tiny": "xpool", "retrieval-meanp-tiny": "mean"}


def fit_variant(world: Path, workdir: Path, pooling: str, steps: int) -> torch.nn.Module:
    import lightning as L

    from tessera.apps.retrieval.module import RetrievalModule
    from tessera.datamodules.retrieval import RetrievalDataModule

    config = yaml.safe_load(CONFIG.read_text())
    L.seed_everything(config["seed_everything"], workers=True)
    module = RetrievalModule(**(config["model"] | {"pooling": pooling}))
    data_args = config["data"] | {"data_dir": str(world), "frame_cache": str(workdir / "cache")}
    data = RetrievalDataModule(**data_args)
    trainer = L.Trainer(
        max_steps=steps, accelerator="cpu", devices=1, logger=L.pytorch.loggers.CSVLogger(
            str(workdir), name=pooling), enable_checkpointing=False, enable_progress_bar=False,
        check_val_every_n_epoch=10, num_sanity_val_steps=0, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module, datamodule=data)
    return module


def train(steps: int = STEPS, workdir: str | Path | None = None) -> dict:
    """Re-train both shipped checkpoints and update their registry entries."""
    from tessera.apps.retrieval import export
    from tessera.apps.retrieval.cli import evaluate
    from tessera.datamodules.retrieval.synth import write_world

    torch.set_num_threads(1)
    entries = {}
    with tempfile.TemporaryDirectory(prefix="tessera-retrieval-") as tmp:
        root = Path(workdir or tmp)
        world = root / "world"
        if not (world / "MSRVTT_data.json").is_file():
            write_world(world, **WORLD)
        eval_worlds = {WORLD["seed"]: world}
        for seed in EVAL_SEEDS:
            eval_worlds[seed] = root / f"eval-{seed}"
            if not (eval_worlds[seed] / "MSRVTT_data.json").is_file():
                write_world(eval_worlds[seed], seed=seed, train=0, val=0, test=WORLD["test"])
        for name, pooling in VARIANTS.items():
            start = time.time()
            module = fit_variant(world, root, pooling, steps)
            out = export(module.eval(), checkpoints_dir() / f"{name}.safetensors")
            scores = {
                seed: evaluate(EvaluateRequest(str(out), str(w), "test", batch_size=32))
                for seed, w in eval_worlds.items()
            }
            r1 = [s["t2v_r1"] for s in scores.values()]
            entry = {
                "task": "retrieval",
                "config": "apps/retrieval/configs/tiny.yaml",
                "file": out.name,
                "sha256": sha256_of(out),
                "command": (
                    f"tessera retrieval synth --out world --seed {WORLD['seed']} --train "
                    f"{WORLD['train']} --val {WORLD['val']} --test {WORLD['test']} && tessera "
                    f"retrieval fit -c apps/retrieval/configs/tiny.yaml --model.pooling "
                    f"{pooling} --trainer.max_steps {steps} (or: python -m "
                    "tessera.apps.retrieval.recipes)"
                ),
                "data": {
                    "world": "tessera retrieval synth",
                    "seed": WORLD["seed"],
                    "splits": {k: WORLD[k] for k in ("train", "val", "test")},
                },  # fmt: skip
                "metrics": scores[WORLD["seed"]],
                "other_seeds": {
                    "seeds": list(EVAL_SEEDS),
                    "t2v_r1": [scores[s]["t2v_r1"] for s in EVAL_SEEDS],
                    "t2v_r1_mean_all": round(statistics.mean(r1), 2),
                    "t2v_r1_stdev_all": round(statistics.stdev(r1), 2),
                },
                "train_minutes_1_thread": round((time.time() - start) / 60, 1),
            }
            write_registry_entry(name, entry)
            entries[name] = entry
            print(json.dumps({name: entry["metrics"], "other_seeds": entry["other_seeds"]}),
                  flush=True)  # fmt: skip
    return entries


if __name__ == "__main__":
    import sys

    train(int(sys.argv[1]) if len(sys.argv) > 1 else STEPS,
          sys.argv[2] if len(sys.argv) > 2 else None)  # fmt: skip
