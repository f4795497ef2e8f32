"""``tessera tryon fit|validate|test|predict|synth|evaluate`` (also ``tessera-tryon``).

Baselines run through the same commands: ``--model.method paste|regressor`` and the
view-selection ablation ``--model.front_only true``; ``evaluate --checkpoint paste`` scores
the paste baseline.
"""

from __future__ import annotations

import argparse
import math
import sys

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from tessera.apps.common.cli import AppCommands, EvaluateRequest, run_app
from tessera.apps.tryon.metrics import PerceptualScores, TryOnScores
from tessera.apps.tryon.module import TryOnModule
from tessera.datamodules.common import collate_skipping
from tessera.datamodules.tryon import synth
from tessera.datamodules.tryon.datamodule import TryOnDataModule
from tessera.datamodules.tryon.dataset import TryOnDataset

PROTOCOL_ROWS = 512  # the VITON-HD / DressCode / MVG tables are scored at 512×384


def split_and_pairs(split: str) -> tuple[str, str]:
    """``test`` (paired) or ``test@unpaired``."""
    name, _, pairs = split.partition("@")
    return name, pairs or "paired"


def protocol_size(records) -> tuple[int, int]:
    """The dataset's resolution ``(H, W)`` (its first person image), capped at 512 rows with
    the aspect kept: VITON-HD's 1024×768 release is scored at 512×384, as in the papers."""
    from tessera.datamodules.tryon.io import open_image

    w, h = open_image(records[0].person).size
    if h > PROTOCOL_ROWS:
        w, h = round(w * PROTOCOL_ROWS / h), PROTOCOL_ROWS
    return h, w


class ScoringPairs(Dataset):
    """Each sample at the model's working size plus, under ``"score"``, the same record at
    the scoring size (ground truth, mask and pre-aligned garments for the metrics)."""

    def __init__(self, model: TryOnDataset, score: TryOnDataset | None):
        self.model, self.score = model, score

    def __len__(self) -> int:
        return len(self.model)

    def __getitem__(self, i: int) -> dict:
        sample = self.model[i]
        if self.score is None:
            return sample
        return sample | {"score": self.score[i]}


def at_scoring_size(result: torch.Tensor, batch: dict) -> tuple[torch.Tensor, dict]:
    """The result upsampled (bicubic) to the scoring size and composited onto that size's
    agnostic person, with the scoring-size sample; unchanged when the sizes agree."""
    if "score" not in batch:
        return result, batch
    ref = batch["score"]
    up = F.interpolate(result, ref["mask"].shape[-2:], mode="bicubic", antialias=True)
    mask = ref["mask"]
    return (mask * up.clamp(0, 1) + (1 - mask) * ref["agnostic"]).clamp(0, 1), ref


@torch.no_grad()
def evaluate(
    request: EvaluateRequest, steps: int | None = None, seed: int | None = None
) -> dict[str, float]:
    """The papers' protocol over ``request.split`` (the official test pairs):

    - paired (``test``): SSIM, PSNR, masked L1, and LPIPS / FID / KID when their weights
      exist offline;
    - unpaired (``test@unpaired``): FID / KID of the results against the test persons
      (no ground truth of the new garment), plus the back-view score;

    scored at the dataset's resolution (``--size H W`` overrides; default
    :func:`protocol_size`). Results made at the model's working size are upsampled to it
    and composited onto the full-size agnostic person. Also the view scores over back-view
    persons (``back_view_accuracy`` where the data has counterfactual renderings, and
    ``back_view_ncc_accuracy``), ``n``, ``n_back_view``, ``n_back_view_decidable`` (persons
    the exact score can decide) and ``score_size``; metrics that could not be
    computed are listed under ``skipped`` on stderr, never given a number."""
    from tessera.apps.tryon import load

    options = request.options
    steps = options.get("steps") or steps
    seed = options.get("seed") if options.get("seed") is not None else seed
    predictor = load(request.checkpoint, device=request.device)
    split, pairs = split_and_pairs(request.split)
    data = TryOnDataModule(request.data, size=predictor.size, num_workers=request.num_workers)
    dataset = data.dataset(split, pairs, side_view="front", on_error="raise")
    size = tuple(options.get("size") or protocol_size(dataset.records))
    score = None if size == predictor.size else TryOnDataset(dataset.records, size, "front")
    loader = DataLoader(
        ScoringPairs(dataset, score),
        batch_size=request.batch_size,
        collate_fn=collate_skipping(),
        num_workers=request.num_workers,
    )
    scores = TryOnScores()
    perceptual = PerceptualScores(
        pairs == "paired",
        features=options.get("features"),
        inception_weights=options.get("inception_weights"),
    )
    for batch in tqdm(loader, desc="evaluate", unit="batch", file=sys.stderr):
        result = predictor.predict_batch(batch, steps, seed)
        result, ref = at_scoring_size(result, batch)
        if pairs == "paired":
            TryOnModule.update_scores(scores, result, ref)
        else:  # only the view score: there is no ground truth of the new garment
            is_back = torch.as_tensor(ref["view"]) == 3
            scores.update(
                result,
                result,
                ref["mask"],
                ref["prealigned_back"],
                ref["prealigned_front"],
                is_back,
            )
        perceptual.update(ref["person"], result)
    metrics = scores.compute()
    if pairs == "unpaired":
        metrics = {k: v for k, v in metrics.items() if k.startswith("back_view")}
    metrics |= perceptual.compute()
    metrics = {k: round(v, 4) for k, v in metrics.items()}
    for name, reason in perceptual.skipped.items():
        print(f"skipped {name}: {reason}", file=sys.stderr)
    n_back = len(scores.values.get("back_view_ncc_accuracy", []))
    exact = [v for v in scores.values.get("back_view_accuracy", []) if math.isfinite(v)]
    if n_back and "back_view_accuracy" not in metrics:
        print(
            "skipped back_view_accuracy: no counterfactual renderings (the synthetic world's "
            "counterfactual/ folder); back_view_ncc_accuracy is the proxy",
            file=sys.stderr,
        )
    return metrics | {
        "n": len(dataset),
        "n_back_view": n_back,
        "n_back_view_decidable": len(exact),
        "score_size": list(size),
    }


def evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=None,
        help="scoring resolution (default: the dataset's, capped at 512x384 as the tables)",
    )
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps (default: model's)")
    parser.add_argument("--seed", type=int, default=None, help="sampling seed")
    parser.add_argument(
        "--inception-weights",
        default=None,
        help="local torch-fidelity FID Inception weights file (FID/KID are skipped without)",
    )


COMMANDS = AppCommands(
    task="tryon",
    model_class=TryOnModule,
    datamodule_class=TryOnDataModule,
    synth=synth.main,
    evaluate=evaluate,
    evaluate_arguments=evaluate_arguments,
)


def main(argv: list[str] | None = None) -> int:
    return run_app(COMMANDS, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    raise SystemExit(main())
