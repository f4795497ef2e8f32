"""Detections as KITTI result objects (camera frame, projected 2-D boxes) and as JSON."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tessera.datamodules.detection3d.calibration import (
    Calibration,
    image_boxes,
    lidar_boxes_to_camera,
)
from tessera.datamodules.detection3d.labels import KittiLabels


def to_kitti(
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    calib: Calibration,
    image_shape: tuple[int, int] | None,
) -> KittiLabels:
    """LiDAR detections -> KITTI result objects as OpenPCDet's ``generate_prediction_dicts``:
    camera-frame box, ``alpha = -atan2(-y, x) + ry``, 2-D box = projected corners clipped to
    the image, truncation/occlusion -1."""
    n = len(boxes)
    loc, dims, ry = (
        lidar_boxes_to_camera(boxes, calib) if n else (np.zeros((0, 3)),) * 2 + (np.zeros(0),)
    )
    alpha = -np.arctan2(-boxes[:, 1], boxes[:, 0]) + ry if n else np.zeros(0)
    return KittiLabels(
        name=[class_names[int(c)] for c in labels],
        truncated=np.full(n, -1.0),
        occluded=np.full(n, -1, dtype=np.int64),
        alpha=alpha,
        bbox=image_boxes(boxes, calib, image_shape),
        dimensions=dims,
        location=loc,
        rotation_y=ry,
        score=np.asarray(scores, dtype=np.float64),
    )


def to_json(
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    kitti: KittiLabels | None = None,
) -> list[dict]:
    """One dict per detection: LiDAR box ``[x, y, z, dx, dy, dz, heading]``, class, score, and
    for KITTI frames the camera-frame fields and 2-D box."""
    out = []
    for i in range(len(boxes)):
        det = {
            "name": class_names[int(labels[i])],
            "score": round(float(scores[i]), 5),
            "box_lidar": [round(float(v), 5) for v in boxes[i]],
        }
        if kitti is not None:
            det |= {
                "bbox": [round(float(v), 2) for v in kitti.bbox[i]],
                "location": [round(float(v), 4) for v in kitti.location[i]],
                "dimensions_hwl": [round(float(v), 4) for v in kitti.dimensions[i]],
                "rotation_y": round(float(kitti.rotation_y[i]), 5),
                "alpha": round(float(kitti.alpha[i]), 5),
            }
        out.append(det)
    return out
