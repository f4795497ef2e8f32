"""COCO person keypoints as released (``annotations/person_keypoints_{split}2017.json``,
images in ``{split}2017/``) and person detections in the COCO results format.

Every problem a user can cause names the file and the annotation: missing fields, keypoints
that are not 17 (x, y, v) triples, visibility outside {0, 1, 2}, missing images. Boxes are
clipped to the image as mmpose's ``CocoDataset`` does; boxes that are empty after clipping
(zero area, or fully outside the image) are left out and counted in ``report``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tessera.datamodules.common import DataError

NUM_KEYPOINTS = 17
REQUIRED_TOP = ("images", "annotations", "categories")
REQUIRED_IMAGE = ("id", "file_name", "width", "height")
REQUIRED_ANN = ("id", "image_id", "category_id", "bbox", "keypoints", "iscrowd", "area")


@dataclass
class PersonInstance:
    """One person box to crop (ground truth or detection).

    Attributes:
        item_id: unique id (``"<image_id>_<ann_id>"``, ``"<image_id>_det<i>"`` or
            ``"<image_id>_full"``).
        keypoints: ``(17, 3)`` x, y, v (ground truth), or None for detections.
    """

    item_id: str
    image_id: int
    image_path: Path
    bbox: np.ndarray
    bbox_score: float = 1.0
    keypoints: np.ndarray | None = None
    image_size: tuple[int, int] = (0, 0)


@dataclass
class CocoKeypoints:
    """A parsed keypoint annotation file."""

    path: Path
    images: dict[int, dict]
    annotations: list[dict]
    categories: list[dict]
    report: Counter = field(default_factory=Counter)


def _load_json(path: Path):
    if not path.is_file():
        raise DataError(path, "file not found", "check the path to the COCO annotation json")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(path, f"not valid JSON ({err})") from err


def clip_box(bbox, width: int, height: int) -> np.ndarray | None:
    """Clip ``xywh`` to ``[0, W-1] x [0, H-1]`` (mmpose ``CocoDataset``); None when the
    clipped box is empty (zero-area box, or fully outside the image)."""
    x, y, w, h = (float(v) for v in bbox)
    x1, y1 = np.clip(x, 0, width - 1), np.clip(y, 0, height - 1)
    x2, y2 = np.clip(x + w, 0, width - 1), np.clip(y + h, 0, height - 1)
    if w <= 0 or h <= 0 or x2 <= x1 or y2 <= y1:
        return None
    return np.array([x1, y1, x2 - x1, y2 - y1])


def read_annotations(path: str | Path) -> CocoKeypoints:
    """Parse and check a ``person_keypoints_*.json`` (raises :class:`DataError`)."""
    path = Path(path)
    raw = _load_json(path)
    if not isinstance(raw, dict):
        raise DataError(path, "top level must be an object with images/annotations/categories")
    for key in REQUIRED_TOP:
        if key not in raw:
            raise DataError(path, f"missing top-level field {key!r}", "is this a COCO json?")
    persons = [c for c in raw["categories"] if c.get("name") == "person" or c.get("id") == 1]
    if not persons or len(persons[0].get("keypoints", [])) != NUM_KEYPOINTS:
        raise DataError(
            path,
            "categories has no 'person' entry with 17 keypoint names",
            "person_keypoints_*.json lists the COCO-17 names in categories[0]['keypoints']",
        )
    images = {}
    for img in raw["images"]:
        missing = [k for k in REQUIRED_IMAGE if k not in img]
        if missing:
            raise DataError(path, f"image entry {img.get('id', '?')} lacks {missing}")
        images[int(img["id"])] = img
    for ann in raw["annotations"]:
        missing = [k for k in REQUIRED_ANN if k not in ann]
        if missing:
            raise DataError(
                path,
                f"annotation {ann.get('id', '?')} lacks {missing}",
                "keypoint annotations need id, image_id, category_id, bbox, keypoints, "
                "iscrowd and area (pycocotools scores OKS with the area)",
            )
        kpts = ann["keypoints"]
        if len(kpts) != 3 * NUM_KEYPOINTS:
            raise DataError(
                path,
                f"annotation {ann['id']}: keypoints has {len(kpts)} values, "
                "expected 51 (17 x, y, v triples)",
            )
        if any(v not in (0, 1, 2) for v in kpts[2::3]):
            raise DataError(path, f"annotation {ann['id']}: visibility flags must be 0, 1 or 2")
        if len(ann["bbox"]) != 4:
            raise DataError(path, f"annotation {ann['id']}: bbox must be [x, y, w, h]")
        if int(ann["image_id"]) not in images:
            raise DataError(path, f"annotation {ann['id']}: image_id {ann['image_id']} unknown")
    return CocoKeypoints(path, images, raw["annotations"], raw["categories"])


def image_path(image_dir: Path, image: dict) -> Path:
    return Path(image_dir) / image["file_name"]


def gt_instances(coco: CocoKeypoints, image_dir: str | Path, train: bool) -> list[PersonInstance]:
    """Person instances from the ground truth. Persons with no labelled keypoint (which
    includes crowd regions) are left out for training and evaluation alike, as mmpose's
    ``CocoDataset`` does (COCOeval ignores them); so are boxes empty after clipping."""
    out = []
    for ann in coco.annotations:
        if int(ann["category_id"]) != 1:
            continue
        img = coco.images[int(ann["image_id"])]
        kpts = np.asarray(ann["keypoints"], dtype=np.float64).reshape(NUM_KEYPOINTS, 3)
        if (train and ann["iscrowd"]) or (kpts[:, 2] > 0).sum() == 0:
            coco.report["no labelled keypoints or crowd"] += 1
            continue
        box = clip_box(ann["bbox"], int(img["width"]), int(img["height"]))
        if box is None:
            coco.report["empty box after clipping to the image"] += 1
            continue
        out.append(
            PersonInstance(
                f"{img['id']}_{ann['id']}",
                int(img["id"]),
                image_path(image_dir, img),
                box,
                1.0,
                kpts,
                (int(img["width"]), int(img["height"])),
            )
        )
    return out


def detection_instances(
    coco_images: dict[int, dict],
    detections_path: str | Path,
    image_dir: str | Path,
    score_threshold: float = 0.0,
    report: Counter | None = None,
) -> list[PersonInstance]:
    """Person boxes from a COCO results json (``[{image_id, category_id, bbox, score}]``,
    e.g. ``COCO_val2017_detections_AP_H_56_person.json``); only category 1 and
    ``score >= score_threshold``."""
    path = Path(detections_path)
    dets = _load_json(path)
    if not isinstance(dets, list):
        raise DataError(path, "detections must be a JSON list in the COCO results format")
    report = Counter() if report is None else report
    out, per_image = [], Counter()
    for i, det in enumerate(dets):
        missing = [k for k in ("image_id", "bbox", "score") if k not in det]
        if missing:
            raise DataError(path, f"detection #{i} lacks {missing}")
        if int(det.get("category_id", 1)) != 1 or float(det["score"]) < score_threshold:
            continue
        img = coco_images.get(int(det["image_id"]))
        if img is None:
            raise DataError(path, f"detection #{i}: image_id {det['image_id']} not in the images")
        box = clip_box(det["bbox"], int(img["width"]), int(img["height"]))
        if box is None:
            report["empty box after clipping to the image"] += 1
            continue
        k = per_image[int(img["id"])]
        per_image[int(img["id"])] += 1
        out.append(
            PersonInstance(
                f"{img['id']}_det{k}",
                int(img["id"]),
                image_path(image_dir, img),
                box,
                float(det["score"]),
                None,
                (int(img["width"]), int(img["height"])),
            )
        )
    return out


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def whole_image_instances(image_dir: str | Path) -> list[PersonInstance]:
    """One box covering each image of a folder (no annotations and no detections given)."""
    from PIL import Image

    out = []
    files = sorted(p for p in Path(image_dir).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    for i, p in enumerate(files):
        try:
            with Image.open(p) as im:
                w, h = im.size
        except OSError:
            w, h = 0, 0  # reported when the item is read
        out.append(
            PersonInstance(f"{p.stem}_full", i, p, np.array([0, 0, w, h], float), 1.0, None, (w, h))
        )
    return out
