"""Dataset layouts: KITTI 3-D object as released, OpenPCDet's custom layout, plain folders.

- KITTI: ``ImageSets/{train,val}.txt`` index ``training/{velodyne,label_2,calib,image_2}``
  and ``ImageSets/test.txt`` indexes ``testing/{velodyne,calib,image_2}`` (3712 / 3769 /
  7518 ids in the usual split).
- custom (OpenPCDet ``docs/CUSTOM_DATASET_TUTORIAL.md``): ``ImageSets/{train,val}.txt``,
  ``points/<id>.npy`` (N x 4), ``labels/<id>.txt`` (``x y z dx dy dz heading category``).
- folder: any folder of ``.bin`` / ``.npy`` / ``.pcd`` files (prediction only, no labels).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from tessera.datamodules.common import DataError
from tessera.datamodules.detection3d.calibration import Calibration, camera_boxes_to_lidar, fov_mask
from tessera.datamodules.detection3d.labels import (
    KittiLabels,
    parse_custom_labels,
    parse_kitti_labels,
)
from tessera.datamodules.detection3d.points import POINT_SUFFIXES, read_points

Layout = Literal["auto", "kitti", "custom", "folder"]


@dataclass
class FrameRef:
    """Where one frame's files are."""

    item_id: str
    points: Path
    label: Path | None = None
    calib: Path | None = None
    image: Path | None = None


@dataclass
class Frame:
    """One loaded frame. ``gt_boxes`` are LiDAR boxes (M, 7) with ``gt_names``; KITTI frames
    also carry the raw ``labels`` (DontCare etc., for the official evaluation), ``calib`` and
    ``image_shape`` (height, width)."""

    item_id: str
    points: np.ndarray
    gt_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 7)))
    gt_names: list[str] = field(default_factory=list)
    labels: KittiLabels | None = None
    calib: Calibration | None = None
    image_shape: tuple[int, int] | None = None
    notes: list[str] = field(default_factory=list)


def detect_layout(root: str | Path) -> str:
    root = Path(root)
    if root.is_file():
        return "folder"
    if (root / "training").is_dir() or (root / "testing").is_dir():
        return "kitti"
    if (root / "points").is_dir():
        return "custom"
    if root.is_dir():
        return "folder"
    raise DataError(root, "no such dataset folder or file")


def _read_ids(root: Path, split: str) -> list[str]:
    path = root / "ImageSets" / f"{split}.txt"
    if not path.is_file():
        raise DataError(
            path,
            f"split file for {split!r} is missing",
            "KITTI and OpenPCDet custom datasets list their ids in ImageSets/<split>.txt",
        )
    ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise DataError(path, f"split {split!r} lists no ids")
    return ids


def kitti_refs(root: str | Path, split: str) -> list[FrameRef]:
    """Frames of a KITTI split. ``test`` lives under ``testing/`` (no labels) when that folder
    exists (the released layout); a dataset without ``testing/`` (the synthetic world) keeps
    its labelled test frames under ``training/``. Every listed id must have its velodyne,
    calib and image files (and labels under ``training/``)."""
    root = Path(root)
    unlabelled = split == "test" and (root / "testing").is_dir()
    part = root / ("testing" if unlabelled else "training")
    refs, missing = [], []
    for i in _read_ids(root, split):
        ref = FrameRef(
            i,
            part / "velodyne" / f"{i}.bin",
            None if unlabelled else part / "label_2" / f"{i}.txt",
            part / "calib" / f"{i}.txt",
            part / "image_2" / f"{i}.png",
        )
        for path in (ref.points, ref.label, ref.calib, ref.image):
            if path is not None and not path.is_file():
                missing.append(path)
        refs.append(ref)
    if missing:
        shown = ", ".join(str(p) for p in missing[:5])
        raise DataError(
            part,
            f"{len(missing)} file(s) listed in ImageSets/{split}.txt are missing (first: {shown})",
            "download the full KITTI object data or fix the split file",
        )
    return refs


def custom_refs(root: str | Path, split: str) -> list[FrameRef]:
    root = Path(root)
    refs, missing = [], []
    for i in _read_ids(root, split):
        ref = FrameRef(i, root / "points" / f"{i}.npy", root / "labels" / f"{i}.txt")
        missing += [p for p in (ref.points, ref.label) if not p.is_file()]
        refs.append(ref)
    if missing:
        raise DataError(
            root,
            f"{len(missing)} file(s) listed in ImageSets/{split}.txt are missing "
            f"(first: {missing[0]})",
        )
    return refs


def folder_refs(root: str | Path) -> list[FrameRef]:
    root = Path(root)
    files = (
        [root]
        if root.is_file()
        else sorted(p for p in root.iterdir() if p.suffix.lower() in POINT_SUFFIXES and p.is_file())
    )
    if not files:
        raise DataError(root, f"no point-cloud files ({', '.join(POINT_SUFFIXES)})")
    stems = [p.stem for p in files]
    if len(set(stems)) != len(stems):
        raise DataError(
            root, "two files share a name with different suffixes; outputs would collide"
        )
    return [FrameRef(p.stem, p) for p in files]


def image_shape(path: Path) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            width, height = im.size
    except Exception as err:
        raise DataError(path, f"unreadable image ({err})") from None
    return height, width


def load_frame(
    ref: FrameRef,
    layout: str,
    class_names: tuple[str, ...] | None = None,
    fov_only: bool = True,
    intensity: str = "keep",
) -> Frame:
    """Read one frame. KITTI points are cropped to the camera field of view when
    ``fov_only`` (the usual KITTI setting); ``gt_boxes`` hold the objects whose type is in
    ``class_names`` (all non-DontCare objects when None)."""
    points, notes = read_points(ref.points, intensity=intensity)
    frame = Frame(ref.item_id, points, notes=notes)
    if layout == "kitti":
        frame.calib = Calibration.from_file(ref.calib)
        frame.image_shape = image_shape(ref.image)
        if fov_only and len(points):
            frame.points = points[fov_mask(points, frame.calib, frame.image_shape)]
        if ref.label is not None:
            labels = parse_kitti_labels(ref.label)
            frame.labels = labels
            keep = np.array(
                [(n in class_names) if class_names else n != "DontCare" for n in labels.name],
                dtype=bool,
            )
            kept = labels.select(keep)
            frame.gt_boxes = camera_boxes_to_lidar(
                kept.location, kept.dimensions, kept.rotation_y, frame.calib
            )
            frame.gt_names = kept.name
    elif layout == "custom" and ref.label is not None:
        boxes, names = parse_custom_labels(ref.label, class_names)
        frame.gt_boxes, frame.gt_names = boxes, names
    return frame
