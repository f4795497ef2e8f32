"""Prediction writer: ``<out>/label_2/<id>.txt`` (KITTI result lines with score, for frames
with calib) and ``<out>/json/<id>.json`` (LiDAR-frame boxes, plus camera fields for KITTI)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tessera.apps.common.writer import ItemPredictionWriter
from tessera.apps.detection3d.results import to_json, to_kitti
from tessera.datamodules.common import atomic_write_text


class DetectionWriter(ItemPredictionWriter):
    """Args:
    output_dir: output folder.
    class_names: the model's classes.
    overwrite: re-predict frames whose outputs exist.
    """

    def __init__(self, output_dir: str, class_names: Sequence[str], overwrite: bool = False):
        super().__init__(output_dir, overwrite)
        self.class_names = list(class_names)
        self.kitti = False
        self.data = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        datamodule = trainer.datamodule
        self.kitti = getattr(datamodule, "layout", None) == "kitti"
        self.data = datamodule
        super().setup(trainer, pl_module, stage)

    def output_paths(self, item_id: str) -> list[Path]:
        paths = [self.output_dir / "json" / f"{item_id}.json"]
        if self.kitti:
            paths.append(self.output_dir / "label_2" / f"{item_id}.txt")
        return paths

    def write_item(self, item: dict[str, Any]) -> None:
        frame = item["frame"]
        kitti = None
        if frame.calib is not None:
            kitti = to_kitti(
                item["boxes"],
                item["scores"],
                item["labels"],
                self.class_names,
                frame.calib,
                frame.image_shape,
            )
        record = {
            "item_id": item["item_id"],
            "source": item["source"],
            "frame": "camera+lidar" if kitti is not None else "lidar",
            "notes": frame.notes,
            "detections": to_json(
                item["boxes"], item["scores"], item["labels"], self.class_names, kitti
            ),
        }
        atomic_write_text(
            self.output_dir / "json" / f"{item['item_id']}.json", json.dumps(record, indent=1)
        )
        if kitti is not None:  # the label file last: it marks the frame finished
            atomic_write_text(
                self.output_dir / "label_2" / f"{item['item_id']}.txt", kitti.to_text()
            )

    def merge(self, rank_summaries: list[dict]) -> dict:
        summary = super().merge(rank_summaries)
        data = self.data
        split = data.splits["predict"] if data is not None else None
        if self.kitti and split != "test":
            from tessera.apps.detection3d.scoring import score_result_folder

            summary["metrics"] = score_result_folder(
                data.data, split, self.output_dir / "label_2", self.class_names
            )
        return summary
