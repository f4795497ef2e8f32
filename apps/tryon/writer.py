"""Prediction writer: ``<out>/<person>___<cloth>.png`` per pair (the naming of the try-on
evaluation scripts, which match generated and ground-truth files by name), plus the summary
with per-item SSIM / PSNR / masked L1 when the pairs are paired."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tessera.apps.common.writer import ItemPredictionWriter
from tessera.datamodules.tryon.dataset import save_rgb


class TryOnWriter(ItemPredictionWriter):
    def output_paths(self, item_id: str) -> list[Path]:
        return [self.output_dir / f"{item_id}.png"]

    def write_item(self, item: dict[str, Any]) -> None:
        save_rgb(self.output_paths(item["item_id"])[0], item["image"])
        if "metrics" in item:
            self.item_metrics[item["item_id"]] = item["metrics"]

    def setup(self, trainer, pl_module, stage: str) -> None:
        self._summarised = False
        super().setup(trainer, pl_module, stage)

    def on_predict_end(self, trainer, pl_module) -> None:
        self._summarised = True
        super().on_predict_end(trainer, pl_module)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        # a re-run with every item finished has no batches, and Lightning then skips the
        # predict loop (and on_predict_end): the summary must still say what was found
        if stage == "predict" and not getattr(self, "_summarised", True):
            self.on_predict_end(trainer, pl_module)
