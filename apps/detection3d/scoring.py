"""Score KITTI result files (``label_2`` format with score) against a dataset's labels."""

from __future__ import annotations

from pathlib import Path

from tessera.apps.detection3d.metrics import kitti_evaluate
from tessera.datamodules.common import DataError
from tessera.datamodules.detection3d.labels import KittiLabels, parse_kitti_labels
from tessera.datamodules.detection3d.layouts import kitti_refs


def score_result_folder(
    data: str | Path, split: str, results: str | Path, classes=("Car", "Pedestrian", "Cyclist")
) -> dict[str, float]:
    """KITTI AP of ``results/<id>.txt`` for every id of ``ImageSets/<split>.txt``; a frame
    without a result file counts as no detections (as in the official evaluation)."""
    refs = kitti_refs(data, split)
    if any(r.label is None for r in refs):
        raise DataError(data, f"split {split!r} has no labels to score against")
    results = Path(results)
    if not results.is_dir():
        raise DataError(results, "no such folder of result files")
    gts, dts = [], []
    for ref in refs:
        gts.append(parse_kitti_labels(ref.label))
        path = results / f"{ref.item_id}.txt"
        dts.append(parse_kitti_labels(path, with_score=True) if path.is_file() else KittiLabels())
    return kitti_evaluate(gts, dts, classes)
