"""``tessera separation fit|validate|test|predict|synth|evaluate`` (also ``tessera-separation``)."""

from __future__ import annotations

import argparse
import sys

import torch
from tqdm import tqdm

from tessera.apps.common.cli import AppCommands, EvaluateRequest, run_app
from tessera.apps.separation.metrics import separation_metrics
from tessera.apps.separation.module import SeparationModule
from tessera.datamodules.separation import synth
from tessera.datamodules.separation.datamodule import SeparationDataModule


def evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--chunk_seconds", "--chunk-seconds", type=float, default=None,
        help="separate in overlap-added windows of this length (approximate; default: one "
        "forward pass per utterance, as published numbers are computed)",
    )  # fmt: skip
    parser.add_argument("--overlap_seconds", "--overlap-seconds", type=float, default=1.0)
    parser.add_argument("--mode", default="min", help="LibriMix / WSJ0-mix min or max")
    parser.add_argument("--mix_type", "--mix-type", default="mix_clean",
                        help="LibriMix mixture folder (mix_clean, mix_both)")  # fmt: skip


@torch.no_grad()
def evaluate(request: EvaluateRequest) -> dict[str, float]:
    """Mean ``si_sdri``, ``sdri``, ``si_sdr``, ``sdr`` of a checkpoint (registry name, file or
    official MossFormer folder) over full utterances of ``request.split``, read at the
    checkpoint's sample rate, plus ``n`` utterances. Each utterance is separated in one
    forward pass unless ``options["chunk_seconds"]`` asks for overlap-add windows."""
    from tessera.apps.separation import load

    options = request.options
    separator = load(
        request.checkpoint, device=request.device, chunk_seconds=options.get("chunk_seconds"),
        overlap_seconds=options.get("overlap_seconds", 1.0),
    )  # fmt: skip
    data = SeparationDataModule(
        request.data, sample_rate=separator.sample_rate, num_spks=separator.num_spks,
        mode=options.get("mode", "min"), mix_type=options.get("mix_type", "mix_clean"),
    )  # fmt: skip
    dataset = data.eval_dataset(request.split)
    if len(dataset) == 0:
        raise ValueError(f"{request.data}: split {request.split!r} has no mixtures")
    totals: dict[str, float] = {}
    for i in tqdm(range(len(dataset)), desc="evaluate", unit="utt", file=sys.stderr):
        item = dataset[i]
        est = separator.separate_waveform(item["mix"]).cpu()
        values = separation_metrics(
            est[None].double(), item["sources"][None].double(), item["mix"][None].double()
        )
        for key, value in values.items():
            totals[key] = totals.get(key, 0.0) + float(value[0])
    metrics = {key: round(value / len(dataset), 4) for key, value in totals.items()}
    return metrics | {"n": len(dataset)}


COMMANDS = AppCommands(
    task="separation",
    model_class=SeparationModule,
    datamodule_class=SeparationDataModule,
    synth=synth.main,
    evaluate=evaluate,
    evaluate_arguments=evaluate_arguments,
)


def main(argv: list[str] | None = None) -> int:
    return run_app(COMMANDS, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    raise SystemExit(main())
