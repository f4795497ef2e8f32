"""Training augmentations of OpenPCDet's KITTI configs (``random_world_flip`` along x,
``random_world_rotation`` in [-pi/4, pi/4], ``random_world_scaling`` in [0.95, 1.05]) and the
point-range crop. Points (N, 4), LiDAR boxes (M, 7)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def global_flip(points: np.ndarray, boxes: np.ndarray, rng: np.random.Generator):
    """Mirror y -> -y (about the x axis) with probability 0.5."""
    if rng.random() < 0.5:
        points, boxes = points.copy(), boxes.copy()
        points[:, 1] *= -1
        boxes[:, 1] *= -1
        boxes[:, 6] *= -1
    return points, boxes


def global_rotation(points, boxes, rng, limits: Sequence[float] = (-np.pi / 4, np.pi / 4)):
    angle = rng.uniform(*limits)
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    points, boxes = points.copy(), boxes.copy()
    points[:, :2] = points[:, :2] @ rot.T
    boxes[:, :2] = boxes[:, :2] @ rot.T
    boxes[:, 6] += angle
    return points, boxes


def global_scaling(points, boxes, rng, limits: Sequence[float] = (0.95, 1.05)):
    scale = rng.uniform(*limits)
    points, boxes = points.copy(), boxes.copy()
    points[:, :3] *= scale
    boxes[:, :6] *= scale
    return points, boxes


def crop_to_range(points: np.ndarray, boxes: np.ndarray, names: list[str], point_cloud_range):
    """Keep points inside the range and boxes whose centre is inside it (x, y)."""
    r = np.asarray(point_cloud_range)
    inside = ((points[:, :3] >= r[:3]) & (points[:, :3] < r[3:])).all(1)
    keep = ((boxes[:, :2] >= r[:2]) & (boxes[:, :2] < r[3:5])).all(1)
    return points[inside], boxes[keep], [n for n, k in zip(names, keep, strict=True) if k]
