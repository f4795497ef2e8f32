"""``tessera tryon fit|validate|test|predict|synth|evaluate`` (also ``tessera-tryon``).

Baselines run through the same commands: ``--model.method paste|regressor`` and the
view-selection ablation ``--model.front_only true``; ``evaluate --checkpoint paste`` scores
the paste baseline.
"""

from __future__ import annotations

import sys

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from tessera.apps.common.cli import AppCommands, EvaluateRequest, run_app
from tessera.apps.tryon.metrics import TryOnScores, perceptual_metrics
from tessera.apps.tryon.module import TryOnModule
from tessera.datamodules.common import collate_skipping
from tessera.datamodules.tryon import synth
from tessera.datamodules.tryon.datamodule import TryOnDataModule


def split_and_pairs(split: str) -> tuple[str, str]:
    """``test`` (paired) or ``test@unpaired``."""
    name, _, pairs = split.partition("@")
    return name, pairs or "paired"


@torch.no_grad()
def evaluate(
    request: EvaluateRequest, steps: int | None = None, seed: int | None = None
) -> dict[str, float]:
    """Paired protocol (SSIM, PSNR, masked L1, LPIPS when its weights exist; FID/KID too)
    over ``request.split`` at the checkpoint's working size; ``split@unpaired`` scores the
    unpaired setting (FID/KID only, the back-view score is defined in both). Also
    ``back_view_accuracy`` over back-view persons and ``n``."""
    from tessera.apps.tryon import load

    predictor = load(request.checkpoint, device=request.device)
    split, pairs = split_and_pairs(request.split)
    data = TryOnDataModule(request.data, size=predictor.size, num_workers=request.num_workers)
    dataset = data.dataset(split, pairs, side_view="front", on_error="raise")
    loader = DataLoader(
        dataset,
        batch_size=request.batch_size,
        collate_fn=collate_skipping(),
        num_workers=request.num_workers,
    )
    scores = TryOnScores()
    real, fake = [], []
    for batch in tqdm(loader, desc="evaluate", unit="batch", file=sys.stderr):
        result = predictor.predict_batch(batch, steps, seed)
        if pairs == "paired":
            TryOnModule.update_scores(scores, result, batch)
        else:  # only the view score: there is no ground truth of the new garment
            is_back = torch.as_tensor(batch["view"]) == 3
            scores.update(
                result,
                result,
                batch["mask"],
                batch["prealigned_back"],
                batch["prealigned_front"],
                is_back,
            )
        real.append(batch["person"])
        fake.append(result)
    metrics = scores.compute()
    if pairs == "unpaired":
        metrics = {k: v for k, v in metrics.items() if k.startswith("back_view")}
    extra, _ = perceptual_metrics(torch.cat(real), torch.cat(fake), pairs == "paired")
    metrics |= extra
    metrics = {k: round(v, 4) for k, v in metrics.items()}
    n_back = len(scores.values.get("back_view_accuracy", []))
    return metrics | {"n": len(dataset), "n_back_view": n_back}


COMMANDS = AppCommands(
    task="tryon",
    model_class=TryOnModule,
    datamodule_class=TryOnDataModule,
    synth=synth.main,
    evaluate=evaluate,
)


def main(argv: list[str] | None = None) -> int:
    return run_app(COMMANDS, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    raise SystemExit(main())
