"""KITTI ``label_2`` files and OpenPCDet custom-dataset labels.

KITTI (devkit ``readme.txt``): one object per line, 15 space-separated fields
``type truncated occluded alpha x1 y1 x2 y2 h w l x y z rotation_y`` plus ``score`` in result
files. ``type`` is one of Car, Van, Truck, Pedestrian, Person_sitting, Cyclist, Tram, Misc or
DontCare; ``truncated`` in [0, 1]; ``occluded`` 0 (visible) .. 3 (unknown); the 2-D box in
pixels of image_2; ``h w l`` in metres; ``x y z`` the bottom centre in rectified camera
coordinates; ``rotation_y`` in [-pi, pi].

Custom (OpenPCDet ``docs/CUSTOM_DATASET_TUTORIAL.md``): ``x y z dx dy dz heading category``
per line, the box centre in the LiDAR frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tessera.datamodules.common import DataError

KITTI_TYPES = (
    "Car",
    "Van",
    "Truck",
    "Pedestrian",
    "Person_sitting",
    "Cyclist",
    "Tram",
    "Misc",
    "DontCare",
)
# The KITTI evaluator's difficulty limits (easy, moderate, hard).
MIN_HEIGHT = (40, 25, 25)
MAX_OCCLUSION = (0, 1, 2)
MAX_TRUNCATION = (0.15, 0.3, 0.5)


@dataclass
class KittiLabels:
    """All objects of one frame as arrays (KITTI field order; ``score`` only in results)."""

    name: list[str] = field(default_factory=list)
    truncated: np.ndarray = field(default_factory=lambda: np.zeros(0))
    occluded: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    alpha: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bbox: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    dimensions: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # h, w, l
    location: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    rotation_y: np.ndarray = field(default_factory=lambda: np.zeros(0))
    score: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __len__(self) -> int:
        return len(self.name)

    def select(self, keep: np.ndarray) -> KittiLabels:
        keep = np.asarray(keep)
        return KittiLabels(
            [n for n, k in zip(self.name, keep, strict=True) if k],
            self.truncated[keep],
            self.occluded[keep],
            self.alpha[keep],
            self.bbox[keep],
            self.dimensions[keep],
            self.location[keep],
            self.rotation_y[keep],
            self.score[keep],
        )

    def difficulty(self) -> np.ndarray:
        """Per object the easiest KITTI level it counts for: 0 easy, 1 moderate, 2 hard, -1 none
        (the evaluator's rule: box height > 40/25/25 px, occlusion and truncation limits)."""
        height = self.bbox[:, 3] - self.bbox[:, 1]
        level = np.full(len(self), -1)
        for d in (2, 1, 0):
            ok = (
                (self.occluded <= MAX_OCCLUSION[d])
                & (self.truncated <= MAX_TRUNCATION[d])
                & (height > MIN_HEIGHT[d])
            )
            level[ok] = d
        return level

    def to_text(self) -> str:
        """KITTI label/result lines, single spaces (the official parser splits on ' ')."""
        lines = []
        for i, name in enumerate(self.name):
            fields = [
                name,
                f"{self.truncated[i]:.2f}",
                str(int(self.occluded[i])),
                f"{self.alpha[i]:.4f}",
                *(f"{v:.2f}" for v in self.bbox[i]),
                *(f"{v:.2f}" for v in self.dimensions[i]),
                *(f"{v:.2f}" for v in self.location[i]),
                f"{self.rotation_y[i]:.4f}",
            ]
            if len(self.score) == len(self.name) and np.isfinite(self.score[i]):
                fields.append(f"{self.score[i]:.4f}")
            lines.append(" ".join(fields))
        return "".join(line + "\n" for line in lines)


def parse_kitti_labels(path: str | Path, with_score: bool = False) -> KittiLabels:
    """Read a ``label_2`` (or result) file; a malformed line raises :class:`DataError` naming
    the file and the line. Result files (16 fields) keep their scores."""
    path = Path(path)
    rows, scores = [], []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) not in (15, 16):
            raise DataError(
                path,
                f"line {number} has {len(parts)} fields, expected 15 "
                "(type truncated occluded alpha x1 y1 x2 y2 h w l x y z ry) "
                "or 16 with a score",
            )
        if parts[0] not in KITTI_TYPES:
            raise DataError(
                path,
                f"line {number}: unknown object type {parts[0]!r}",
                f"KITTI types are {', '.join(KITTI_TYPES)}",
            )
        try:
            numbers = [float(v) for v in parts[1:]]
        except ValueError:
            raise DataError(
                path, f"line {number} has a non-numeric field ({line.strip()[:60]!r})"
            ) from None
        if not np.all(np.isfinite(numbers)):
            raise DataError(path, f"line {number} has a NaN or infinite field")
        rows.append((parts[0], numbers[:14]))
        scores.append(numbers[14] if len(numbers) == 15 else (0.0 if with_score else np.nan))
    if not rows:
        return KittiLabels()
    values = np.array([r[1] for r in rows], dtype=np.float64)
    return KittiLabels(
        name=[r[0] for r in rows],
        truncated=values[:, 0],
        occluded=values[:, 1].astype(np.int64),
        alpha=values[:, 2],
        bbox=values[:, 3:7],
        dimensions=values[:, 7:10],
        location=values[:, 10:13],
        rotation_y=values[:, 13],
        score=np.array(scores),
    )


def parse_custom_labels(path: str | Path, class_names: tuple[str, ...] | None = None):
    """Read an OpenPCDet custom label file -> ``(boxes (N, 7) float64, names list)``.

    Raises :class:`DataError` on a line without 8 fields, a non-numeric value, a
    non-positive size, or (when ``class_names`` is given) a category outside the classes.
    """
    path = Path(path)
    boxes, names = [], []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 8:
            raise DataError(
                path,
                f"line {number} has {len(parts)} fields, expected 8 "
                "(x y z dx dy dz heading category)",
            )
        try:
            box = [float(v) for v in parts[:7]]
        except ValueError:
            raise DataError(path, f"line {number} has a non-numeric box value") from None
        if not np.all(np.isfinite(box)) or min(box[3:6]) <= 0:
            raise DataError(path, f"line {number}: box sizes must be finite and positive")
        if class_names is not None and parts[7] not in class_names:
            raise DataError(
                path,
                f"line {number}: category {parts[7]!r} is not in the "
                f"configured classes {list(class_names)}",
                "add it to class_names or map it in the label files",
            )
        boxes.append(box)
        names.append(parts[7])
    return np.array(boxes, dtype=np.float64).reshape(-1, 7), names


def custom_labels_text(boxes: np.ndarray, names: list[str]) -> str:
    return "".join(
        " ".join(f"{v:.4f}" for v in box) + f" {name}\n"
        for box, name in zip(boxes, names, strict=True)
    )
