"""``tessera segmentation`` (also ``tessera-segmentation``): fit | validate | test | predict
| synth | evaluate.

Models and data are picked by class in the config (``model.class_path``:
``SemanticSegmentation`` or ``ReferringSegmentation``; ``data.class_path``:
``SemanticDataModule`` or ``GroundingDataModule``), see ``apps/segmentation/configs/``.
"""

from __future__ import annotations

import sys

from tessera.apps.common.cli import AppCommands, run_app
from tessera.apps.segmentation.evaluate import evaluate
from tessera.apps.segmentation.module import SegmentationTask
from tessera.datamodules.segmentation.datamodule import SegmentationDataModule
from tessera.datamodules.segmentation.synth import main as synth_main

COMMANDS = AppCommands(
    task="segmentation",
    model_class=SegmentationTask,
    datamodule_class=SegmentationDataModule,
    synth=synth_main,
    evaluate=evaluate,
    cli_kwargs={"subclass_mode_model": True, "subclass_mode_data": True},
)


def main(argv: list[str] | None = None) -> int:
    return run_app(COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
