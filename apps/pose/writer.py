"""Prediction writers.

- 2-D: one ``items/<item_id>.json`` per person box (atomic; re-runs skip finished boxes),
  then ``person_keypoints_results.json`` in the COCO results format
  (``[{image_id, category_id, keypoints, score}]``, rescored and OKS-NMS filtered as mmpose
  does) over every finished box, and ``summary.json`` (which boxes were used: ground truth,
  detections or the whole image).
- Lifting: ``<subject>/<action>/cam<k>.npz`` per clip with ``joints_3d (T, 17, 3)`` metres
  root-relative (camera frame) and the ``poses_2d`` it came from; MPJPE in the summary when
  the 3-D ground truth exists.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from tessera.apps.common.writer import ItemPredictionWriter
from tessera.apps.pose import metrics
from tessera.datamodules.common import atomic_write_bytes, atomic_write_text

RESULTS_FILE = "person_keypoints_results.json"


class KeypointResultsWriter(ItemPredictionWriter):
    """COCO keypoint results (see the module docstring).

    Args:
        output_dir: output folder.
        overwrite: predict boxes whose item file exists again.
        nms_threshold, keypoint_score_thr: mmpose's rescoring / OKS-NMS.
    """

    def __init__(
        self,
        output_dir: str,
        overwrite: bool = False,
        nms_threshold: float | None = 0.9,
        keypoint_score_thr: float = 0.2,
    ):
        super().__init__(output_dir, overwrite)
        self.nms_threshold, self.keypoint_score_thr = nms_threshold, keypoint_score_thr

    def output_paths(self, item_id: str) -> list[Path]:
        return [self.output_dir / "items" / f"{item_id}.json"]

    def write_item(self, item: dict[str, Any]) -> None:
        atomic_write_text(self.output_paths(item["item_id"])[0], json.dumps(item))

    def on_predict_end(self, trainer, pl_module) -> None:
        super().on_predict_end(trainer, pl_module)
        if trainer.is_global_zero:
            items = [
                json.loads(p.read_text())
                for p in sorted((self.output_dir / "items").glob("*.json"))
            ]
            results = metrics.coco_results(items, self.nms_threshold, self.keypoint_score_thr)
            atomic_write_text(self.output_dir / RESULTS_FILE, json.dumps(results))
            summary_path = self.output_dir / "summary.json"
            summary = json.loads(summary_path.read_text())
            dm = trainer.datamodule
            summary["boxes"] = getattr(dm, "box_source", {}).get("predict", "unknown")
            summary["results"] = {"file": RESULTS_FILE, "instances": len(results)}
            summary["left_out"] = dict(getattr(dm, "report", {}))
            atomic_write_text(summary_path, json.dumps(summary, indent=1))


class LiftingWriter(ItemPredictionWriter):
    """npz of lifted 3-D joints per clip (see the module docstring)."""

    def output_paths(self, item_id: str) -> list[Path]:
        return [self.output_dir / f"{item_id}.npz"]

    def write_item(self, item: dict[str, Any]) -> None:
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            joints_3d=np.asarray(item["joints_3d"], np.float32),
            poses_2d=np.asarray(item["poses_2d"], np.float32),
            subject=item["subject"],
            action=item["action"],
            camera=item["camera"],
        )
        atomic_write_bytes(self.output_paths(item["item_id"])[0], buf.getvalue())
        if "metrics" in item:
            self.item_metrics[item["item_id"]] = item["metrics"]


def writer_for(module) -> ItemPredictionWriter:
    hp = module.hparams
    if "input_size" in hp:
        return KeypointResultsWriter(
            hp.predict_out, hp.overwrite, hp.nms_threshold, hp.keypoint_score_thr
        )
    return LiftingWriter(hp.predict_out, hp.overwrite)
