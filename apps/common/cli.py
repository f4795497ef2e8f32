"""Command-line scaffold shared by the task apps.

``tessera <task> fit|validate|test|predict ...`` go to Lightning's ``LightningCLI`` (config
files with ``-c``, ``--print_config``, ``--ckpt_path`` to resume); ``synth`` writes the
task's synthetic world; ``evaluate`` scores a checkpoint on a dataset and prints the metrics
as one JSON object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lightning.pytorch.cli import LightningCLI

from tessera.datamodules.common.io import atomic_write_text

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


@dataclass
class EvaluateRequest:
    """What ``evaluate`` was asked to do (the app's evaluate function receives this)."""

    checkpoint: str
    data: str
    split: str = "test"
    batch_size: int = 4
    num_workers: int = 0
    device: str = "cpu"
    options: dict[str, Any] = field(default_factory=dict)  # the app's own evaluate options


@dataclass
class AppCommands:
    """Everything an app plugs into the scaffold.

    Args:
        task: task name (``tessera <task> ...``).
        model_class: the LightningModule (or base class with ``subclass_mode_model``).
        datamodule_class: the LightningDataModule.
        synth: the synthetic-world entry point, called with the remaining argv.
        evaluate: returns a flat ``{metric: value}`` dict for an :class:`EvaluateRequest`.
        default_split: split ``evaluate`` uses when ``--split`` is not given.
        cli_kwargs: extra ``LightningCLI`` keyword arguments.
        evaluate_arguments: adds app-specific ``evaluate`` options to the parser; their
            values reach the app in ``EvaluateRequest.options``.
    """

    task: str
    model_class: type
    datamodule_class: type
    synth: Callable[[list[str]], int]
    evaluate: Callable[[EvaluateRequest], dict[str, Any]]
    default_split: str = "test"
    cli_kwargs: dict = field(default_factory=dict)
    evaluate_arguments: Callable[[argparse.ArgumentParser], None] | None = None


def _help(app: AppCommands) -> str:
    return (
        f"usage: tessera {app.task} <command> [options]\n\n"
        "commands:\n"
        "  fit | validate | test | predict   Lightning CLI (-c CONFIG.yaml, --print_config,\n"
        "                                    --ckpt_path to resume); `<command> --help` for all\n"
        "  synth                             write a synthetic world in the task's real format\n"
        "  evaluate                          score a checkpoint on a dataset, JSON on stdout\n"
    )


def _evaluate(app: AppCommands, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog=f"tessera {app.task} evaluate",
        description="Evaluate a checkpoint; the last stdout line is the metrics as JSON.",
    )
    parser.add_argument("--checkpoint", required=True, help="registry name or checkpoint file")
    parser.add_argument("--data", required=True, help="dataset folder in the app's format")
    parser.add_argument("--split", default=app.default_split)
    parser.add_argument("--out", default=None, help="also write the metrics to this JSON file")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    common = {a.dest for a in parser._actions}
    if app.evaluate_arguments is not None:
        app.evaluate_arguments(parser)
    args = parser.parse_args(argv)
    request = EvaluateRequest(
        checkpoint=args.checkpoint,
        data=args.data,
        split=args.split,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        device=args.device,
        options={k: v for k, v in vars(args).items() if k not in common},
    )
    try:
        metrics = app.evaluate(request)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    text = json.dumps(metrics, sort_keys=True)
    if args.out:
        atomic_write_text(args.out, text + "\n")
    print(text, flush=True)
    return 0


def run_app(app: AppCommands, argv: list[str] | None = None) -> int:
    """Dispatch ``argv`` (without the task name) to the right command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_help(app))
        return 0
    command = argv[0]
    if command == "synth":
        return app.synth(argv[1:]) or 0
    if command == "evaluate":
        return _evaluate(app, argv[1:])
    if command not in LIGHTNING_COMMANDS:
        print(_help(app), file=sys.stderr)
        print(f"error: unknown command {command!r}", file=sys.stderr)
        return 2
    # Only training runs keep their resolved config (next to the logs/checkpoints); predict,
    # validate and test would otherwise drop a config.yaml into the working directory.
    if command == "fit":
        kwargs = {"save_config_kwargs": {"overwrite": True}}
    else:
        kwargs = {"save_config_callback": None}
    kwargs |= app.cli_kwargs
    LightningCLI(app.model_class, app.datamodule_class, args=argv, **kwargs)
    return 0
