"""Prediction writers.

- 2-D: one ``items/<item_id>.json`` per person box (atomic; re-runs skip finished boxes),
  then ``person_keypoints_results.json`` in the COCO results format
  (``[{image_id, category_id, keypoints, score}]``, rescored and OKS-NMS filtered as mmpose
  does) over every finished box, and ``summary.json`` (which boxes were used: ground truth,
  detections or the whole image).
  With ``overlays`` (``tessera pose predict --overlays DIR``) also ``DIR/<image stem>.png``
  per input image: its results' skeletons drawn by :func:`~tessera.apps.pose.draw.draw_skeletons`
  at the image's size (atomic; re-runs keep existing overlays, counted under ``overlays``
  in the summary).
- Lifting: ``<subject>/<action>/cam<k>.npz`` per clip with ``joints_3d (T, 17, 3)`` metres
  root-relative (camera frame) and the ``poses_2d`` it came from; MPJPE in the summary when
  the 3-D ground truth exists.
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from tessera.apps.common.writer import ItemPredictionWriter
from tessera.apps.pose import metrics
from tessera.apps.pose.draw import draw_skeletons, png_bytes
from tessera.datamodules.common import DataError, atomic_write_bytes, atomic_write_text
from tessera.datamodules.pose.datasets import read_rgb

RESULTS_FILE = "person_keypoints_results.json"


class KeypointResultsWriter(ItemPredictionWriter):
    """COCO keypoint results and optional overlays (see the module docstring).

    Args:
        output_dir: output folder.
        overwrite: predict boxes whose item file exists again (and redraw overlays).
        nms_threshold, keypoint_score_thr: mmpose's rescoring / OKS-NMS; joints below
            ``keypoint_score_thr`` are drawn hollow in the overlays.
        overlays: folder for one skeleton overlay PNG per input image (None: none).
    """

    def __init__(
        self,
        output_dir: str,
        overwrite: bool = False,
        nms_threshold: float | None = 0.9,
        keypoint_score_thr: float = 0.2,
        overlays: str | None = None,
    ):
        super().__init__(output_dir, overwrite)
        self.nms_threshold, self.keypoint_score_thr = nms_threshold, keypoint_score_thr
        self.overlays_dir = Path(overlays) if overlays else None
        self._datamodule, self._progress = None, False

    def output_paths(self, item_id: str) -> list[Path]:
        return [self.output_dir / "items" / f"{item_id}.json"]

    def write_item(self, item: dict[str, Any]) -> None:
        atomic_write_text(self.output_paths(item["item_id"])[0], json.dumps(item))

    def overlay_path(self, image_path: Path) -> Path:
        return self.overlays_dir / f"{Path(image_path).stem}.png"

    def on_predict_end(self, trainer, pl_module) -> None:
        self._datamodule = trainer.datamodule
        self._progress = trainer.progress_bar_callback is not None
        super().on_predict_end(trainer, pl_module)

    def merge(self, rank_summaries: list[dict]) -> dict:
        """The base summary plus the COCO results file over every finished box (all ranks'
        items are on disk by now), the box source and, with ``overlays``, the overlays."""
        summary = super().merge(rank_summaries)
        items = [
            json.loads(p.read_text()) for p in sorted((self.output_dir / "items").glob("*.json"))
        ]
        results = metrics.coco_results(items, self.nms_threshold, self.keypoint_score_thr)
        atomic_write_text(self.output_dir / RESULTS_FILE, json.dumps(results))
        dm = self._datamodule
        summary["boxes"] = getattr(dm, "box_source", {}).get("predict", "unknown")
        summary["results"] = {"file": RESULTS_FILE, "instances": len(results)}
        summary["left_out"] = dict(getattr(dm, "report", {}))
        if self.overlays_dir is not None:
            summary["overlays"] = self.write_overlays(results, _predict_images(dm))
        return summary

    def write_overlays(self, results: list[dict], images: dict[int, Path]) -> dict:
        """One PNG per image of ``images`` (``image_id`` → file) with its ``results`` drawn;
        existing PNGs are kept unless ``overwrite``. Returns the summary's counts."""
        people: dict[int, list[np.ndarray]] = defaultdict(list)
        for r in results:
            people[int(r["image_id"])].append(np.reshape(r["keypoints"], (17, 3)))
        written, existing, skipped = 0, 0, []
        for image_id, path in tqdm(
            sorted(images.items()), desc="overlays", disable=not self._progress, leave=False
        ):
            out = self.overlay_path(path)
            if out.exists() and not self.overwrite:
                existing += 1
                continue
            if image_id not in people:
                skipped.append({"image": str(path), "reason": "no predicted person (see skipped)"})
                continue
            try:
                image = read_rgb(path)
            except DataError as err:
                skipped.append({"image": str(path), "reason": str(err)})
                continue
            drawn = draw_skeletons(image, np.stack(people[image_id]), None, self.keypoint_score_thr)
            atomic_write_bytes(out, png_bytes(drawn))
            written += 1
        return {
            "dir": str(self.overlays_dir),
            "written": written,
            "already_done": existing,
            "skipped": skipped,
        }


def _predict_images(datamodule) -> dict[int, Path]:
    """``image_id`` → file of every image the datamodule's ``setup("predict")`` listed
    (finished boxes included, so a re-run still draws missing overlays)."""
    instances = getattr(datamodule, "_predict_items", None) or []
    return {int(i.image_id): Path(i.image_path) for i in instances}


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
            hp.predict_out,
            hp.overwrite,
            hp.nms_threshold,
            hp.keypoint_score_thr,
            hp.get("overlays"),
        )
    return LiftingWriter(hp.predict_out, hp.overwrite)
