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
