"""``tessera separation fit|validate|test|predict|synth|evaluate`` (also ``tessera-separation``)."""

from __future__ import annotations

import sys

import torch

from tessera.apps.common.cli import AppCommands, EvaluateRequest, run_app
from tessera.apps.separation.metrics import separation_metrics
from tessera.apps.separation.module import SeparationModule
from tessera.datamodules.separation import synth
from tessera.datamodules.separation.datamodule import SeparationDataModule


@torch.no_grad()
def evaluate(request: EvaluateRequest) -> dict[str, float]:
    """Mean ``si_sdri``, ``sdri``, ``si_sdr``, ``sdr`` of a checkpoint over full utterances of
    ``request.split`` (mixtures at the checkpoint's rate), plus ``n`` utterances."""
    from tessera.apps.separation import load

    separator = load(request.checkpoint, device=request.device)
    data = SeparationDataModule(
        request.data, sample_rate=separator.sample_rate, num_spks=separator.num_spks,
        cache_audio=False,
    )  # fmt: skip
    dataset = data.eval_dataset(request.split)
    if len(dataset) == 0:
        raise ValueError(f"{request.data}: split {request.split!r} has no mixtures")
    totals: dict[str, float] = {}
    for i in range(len(dataset)):
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
)


def main(argv: list[str] | None = None) -> int:
    return run_app(COMMANDS, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    raise SystemExit(main())
