"""NMS of BEV boxes on CPU: rotated (exact polygon IoU, :mod:`.iou`) or circle (centre
distance, CenterPoint's ``circle_nms``)."""

from __future__ import annotations

import numpy as np

from tessera.apps.detection3d.iou import bev_iou


def rotated_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS of LiDAR boxes (K, 7) by rotated BEV IoU; returns kept indices, best first."""
    order = np.argsort(-scores, kind="stable")
    if len(order) == 0:
        return order
    iou = bev_iou(boxes[order][:, [0, 1, 3, 4, 6]], boxes[order][:, [0, 1, 3, 4, 6]])
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(order[i])
        suppressed |= iou[i] > iou_threshold
    return np.array(keep, dtype=np.int64)


def circle_nms(boxes: np.ndarray, scores: np.ndarray, radius: float) -> np.ndarray:
    """Greedy NMS by BEV centre distance: a box within ``radius`` metres of a kept,
    higher-scoring box is dropped."""
    order = np.argsort(-scores, kind="stable")
    centres = boxes[order, :2]
    dist2 = ((centres[:, None] - centres[None]) ** 2).sum(-1)
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(order[i])
        suppressed |= dist2[i] < radius**2
    return np.array(keep, dtype=np.int64)
