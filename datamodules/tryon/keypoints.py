"""Pose keypoints: OpenPose json readers, skeleton rendering and MV-VTON's side-view rule.

- VITON-HD ``openpose_json/<id>_keypoints.json``: OpenPose BODY_25,
  ``people[0].pose_keypoints_2d`` = 25 × (x, y, confidence), pixels of the person image.
- DressCode ``keypoints/<id>_2.json``: ``{"keypoints": [[x, y, score, id], ...]}``, 18 COCO
  joints (pytorch-openpose), x/y in a 384×512 frame (the reference loader scales by H/512).

Both are returned as ``(18, 2)`` COCO-order joints (BODY_25's mid-hip 8 dropped); joints
OpenPose did not find are ``(0, 0)``, as in its files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from tessera.datamodules.common import DataError

NOSE, NECK, R_SHOULDER, R_ELBOW, R_WRIST, L_SHOULDER, L_ELBOW, L_WRIST = range(8)
R_HIP, R_KNEE, R_ANKLE, L_HIP, L_KNEE, L_ANKLE = range(8, 14)
BODY25_TO_COCO18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
LIMBS = (
    (NECK, R_SHOULDER),
    (R_SHOULDER, R_ELBOW),
    (R_ELBOW, R_WRIST),
    (NECK, L_SHOULDER),
    (L_SHOULDER, L_ELBOW),
    (L_ELBOW, L_WRIST),
    (NECK, R_HIP),
    (R_HIP, R_KNEE),
    (R_KNEE, R_ANKLE),
    (NECK, L_HIP),
    (L_HIP, L_KNEE),
    (L_KNEE, L_ANKLE),
    (NECK, NOSE),
)
# OpenPose's rendering colours; the right upper arm (0, 170, 255) and the left one
# (0, 255, 170) are the colour ranges MV-VTON's side-view rule looks for.
LIMB_COLOURS = (
    (255, 0, 0),
    (0, 170, 255),
    (0, 100, 255),
    (255, 85, 0),
    (0, 255, 170),
    (0, 255, 100),
    (0, 255, 0),
    (85, 255, 0),
    (170, 255, 0),
    (0, 255, 255),
    (0, 85, 255),
    (0, 0, 255),
    (255, 0, 170),
)
RIGHT_ARM_RANGE = ((0, 20), (160, 180), (235, 255))
LEFT_ARM_RANGE = ((0, 20), (235, 255), (160, 180))


def _load_json(path: Path) -> dict:
    if not path.is_file():
        raise DataError(
            path,
            "pose keypoints file is missing",
            "run OpenPose (BODY_25, --write_json) on the person image, or remove the pair",
        )
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(path, f"not valid JSON ({err})") from err


def read_openpose_json(path: str | Path) -> np.ndarray:
    """COCO-order ``(18, 2)`` joints of ``people[0]`` in an OpenPose BODY_25/COCO json."""
    path = Path(path)
    data = _load_json(path)
    people = data.get("people")
    if not people:
        raise DataError(path, "no person in 'people'", "the person must be detected by OpenPose")
    flat = np.asarray(people[0].get("pose_keypoints_2d", []), dtype=np.float32)
    if flat.size == 75:
        points = flat.reshape(25, 3)[list(BODY25_TO_COCO18), :2]
    elif flat.size == 54:
        points = flat.reshape(18, 3)[:, :2]
    else:
        raise DataError(
            path, f"pose_keypoints_2d has {flat.size} values, expected 75 (BODY_25) or 54 (COCO)"
        )
    return points


def read_dresscode_json(path: str | Path, image_height: int) -> np.ndarray:
    """``(18, 2)`` joints of a DressCode keypoints file, in pixels of an image ``image_height``
    tall (the files are in a 512-tall frame)."""
    path = Path(path)
    data = _load_json(path)
    points = np.asarray(data.get("keypoints", []), dtype=np.float32)
    if points.ndim != 2 or points.shape[0] != 18 or points.shape[1] < 2:
        raise DataError(path, f"'keypoints' must be 18 × [x, y, score, id], got {points.shape}")
    return points[:, :2] * (image_height / 512.0)


def found(points: np.ndarray, i: int) -> bool:
    return bool(points[i, 0] > 0 or points[i, 1] > 0)


def render_skeleton(points: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """OpenPose-style skeleton (limbs in OpenPose colours on black), ``size`` = (H, W)."""
    h, w = size
    image = Image.new("RGB", (w, h), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    width = max(1, round(h / 64))
    for (a, b), colour in zip(LIMBS, LIMB_COLOURS, strict=True):
        if found(points, a) and found(points, b):
            draw.line([tuple(points[a]), tuple(points[b])], fill=colour, width=width)
    return image


def _colour_mask(rgb: np.ndarray, ranges) -> np.ndarray:
    keep = np.ones(rgb.shape[:2], bool)
    for c, (lo, hi) in enumerate(ranges):
        keep &= (rgb[..., c] >= lo) & (rgb[..., c] <= hi)
    return keep


def side_view_faces_away(skeleton: np.ndarray) -> bool:
    """MV-VTON's rule for a side view (``ddpm.py``): the back garment is used when the right
    upper arm reaches further right in the rendered skeleton than the left one.

    Args:
        skeleton: ``(H, W, 3)`` uint8 rendered skeleton.
    """
    right = np.nonzero(_colour_mask(skeleton, RIGHT_ARM_RANGE))[1]
    left = np.nonzero(_colour_mask(skeleton, LEFT_ARM_RANGE))[1]
    if right.size == 0 or left.size == 0:
        return False
    return bool(right.max() > left.max())
