"""Prediction writer: ``<out>/<id>_s{k}.wav`` per source and ``metrics.csv`` (SI-SDRi etc.)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from tessera.apps.common.writer import ItemPredictionWriter
from tessera.datamodules.common import atomic_write_text
from tessera.datamodules.separation.audio import write_audio

METRIC_KEYS = ("si_sdr", "si_sdri", "sdr", "sdri")


class SeparationWriter(ItemPredictionWriter):
    """Writes each separated source as 16-bit wav at the input's sample rate.

    Args:
        output_dir: output folder.
        overwrite: re-separate items whose files exist.
        num_spks: sources per item (to know which files make an item finished).
    """

    def __init__(self, output_dir: str, overwrite: bool = False, num_spks: int = 2):
        super().__init__(output_dir, overwrite)
        self.num_spks = num_spks

    def setup(self, trainer, pl_module, stage: str) -> None:
        self.num_spks = pl_module.hparams.get("num_spks", self.num_spks)
        super().setup(trainer, pl_module, stage)

    def output_paths(self, item_id: str) -> list[Path]:
        return [self.output_dir / f"{item_id}_s{k + 1}.wav" for k in range(self.num_spks)]

    def write_item(self, item: dict[str, Any]) -> None:
        for path, source in zip(self.output_paths(item["item_id"]), item["sources"], strict=True):
            write_audio(path, source, item["sample_rate"])
        if "metrics" in item:
            self.item_metrics[item["item_id"]] = item["metrics"]

    def on_predict_end(self, trainer, pl_module) -> None:
        super().on_predict_end(trainer, pl_module)
        if trainer.is_global_zero:
            self.write_csv(trainer.world_size)

    def write_csv(self, world_size: int) -> None:
        """Per-file metrics of every rank (this run's items) merged into ``metrics.csv``."""
        import json

        rows: dict[str, dict] = {}
        for r in range(world_size):
            summary = json.loads((self.output_dir / f"summary-rank{r}.json").read_text())
            rows.update(summary["item_metrics"])
        path = self.output_dir / "metrics.csv"
        if path.exists():  # keep rows of items finished by an earlier run
            with open(path, newline="") as f:
                rows = {
                    r["item_id"]: {k: float(r[k]) for k in METRIC_KEYS} for r in csv.DictReader(f)
                } | rows
        if not rows:
            return
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(["item_id", *METRIC_KEYS])
        for item_id in sorted(rows):
            writer.writerow([item_id, *(f"{rows[item_id][k]:.4f}" for k in METRIC_KEYS)])
        atomic_write_text(path, text.getvalue())
