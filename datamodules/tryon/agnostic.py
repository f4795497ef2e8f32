"""Agnostic person and inpainting mask from a parse map and pose keypoints, and the
bounding-box pre-alignment of a flat garment.

The mask follows VITON-HD's preprocessing (HR-VITON ``cp_dataset.py`` ``get_agnostic``): the
torso polygon between shoulders and hips, the neck, thick limb strokes along the arms, all
scaled by ``r = |shoulder_r − shoulder_l| / 16``, with the hips pulled to shoulder width; then
head, lower-body and arm skin away from the limb strokes are restored from the person. We also
cover every pixel the parse labels as the worn garment (so nothing of the old garment leaks
through), as DressCode's loader does with its ``parse_mask``. The agnostic person is the
person with the mask painted grey (128), the convention of the released ``agnostic-v3.2``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from tessera.datamodules.tryon.keypoints import (
    L_ELBOW,
    L_HIP,
    L_SHOULDER,
    L_WRIST,
    NECK,
    R_ELBOW,
    R_HIP,
    R_SHOULDER,
    R_WRIST,
    found,
)
from tessera.datamodules.tryon.labels import LabelSet

GREY = 128


def _disc(draw: ImageDraw.ImageDraw, p, rx: float, ry: float) -> None:
    draw.ellipse((p[0] - rx, p[1] - ry, p[0] + rx, p[1] + ry), fill=255)


def upper_body_mask(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The pose-drawn part of the mask, ``size`` = (H, W) → bool ``(H, W)``."""
    h, w = size
    image = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(image)
    p = points.astype(np.float64).copy()
    shoulders = np.linalg.norm(p[L_SHOULDER] - p[R_SHOULDER])
    hips = np.linalg.norm(p[L_HIP] - p[R_HIP])
    if shoulders <= 0:
        return np.zeros((h, w), bool)
    if hips > 0:  # hips pulled to shoulder width around their mid point, as VITON-HD does
        mid = (p[L_HIP] + p[R_HIP]) / 2
        p[R_HIP] = mid + (p[R_HIP] - mid) / hips * shoulders
        p[L_HIP] = mid + (p[L_HIP] - mid) / hips * shoulders
    r = int(shoulders / 16) + 1
    for i in (R_HIP, L_HIP):
        _disc(draw, p[i], r * 3, r * 6)
    draw.line([tuple(p[R_SHOULDER]), tuple(p[R_HIP])], fill=255, width=r * 6)
    draw.line([tuple(p[L_SHOULDER]), tuple(p[L_HIP])], fill=255, width=r * 6)
    draw.line([tuple(p[R_HIP]), tuple(p[L_HIP])], fill=255, width=r * 12)
    draw.polygon([tuple(p[i]) for i in (R_SHOULDER, L_SHOULDER, L_HIP, R_HIP)], fill=255)
    nx, ny = p[NECK]
    draw.rectangle((nx - r * 5, ny - r * 9, nx + r * 5, ny), fill=255)
    draw.line([tuple(p[R_SHOULDER]), tuple(p[L_SHOULDER])], fill=255, width=r * 12)
    for i in (R_SHOULDER, L_SHOULDER):
        _disc(draw, p[i], r * 5, r * 6)
    for a, b in (
        (R_SHOULDER, R_ELBOW),
        (R_ELBOW, R_WRIST),
        (L_SHOULDER, L_ELBOW),
        (L_ELBOW, L_WRIST),
    ):
        if found(p, a) and found(p, b):
            draw.line([tuple(p[a]), tuple(p[b])], fill=255, width=r * 10)
            _disc(draw, p[b], r * 5, r * 5)
    return np.asarray(image) > 0


def inpainting_mask(
    parse: np.ndarray, points: np.ndarray, labels: LabelSet, category: str = "upper_body"
) -> np.ndarray:
    """Bool ``(H, W)`` region the try-on regenerates (True = generate).

    Args:
        parse: ``(H, W)`` label ids of ``labels``.
        points: ``(18, 2)`` COCO-order joints in pixels of the same image.
        labels: the parse map's label set.
        category: ``upper_body``, ``lower_body`` or ``dresses``.
    """
    h, w = parse.shape
    garment = np.isin(parse, labels.garment[category])
    radius = max(h, w) // 128
    if radius:
        garment = ndimage.binary_dilation(garment, iterations=radius)
    head = np.isin(parse, labels.head)
    if category == "upper_body":
        mask = upper_body_mask(points, (h, w)) | garment
        mask &= ~head & ~np.isin(parse, labels.lower)
    else:
        legs = np.isin(parse, [i for i in labels.lower if i not in labels.garment[category]])
        mask = garment | legs
        if category == "dresses":
            mask |= upper_body_mask(points, (h, w))
        mask &= ~head
    return mask


def agnostic_image(person: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The person ``(H, W, 3)`` uint8 with the mask region painted grey."""
    out = person.copy()
    out[mask] = GREY
    return out


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(top, bottom, left, right)`` (exclusive ends) of a bool mask, None if empty."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return None
    return int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1


def prealign_garment(
    agnostic: np.ndarray, mask: np.ndarray, garment: np.ndarray, garment_mask: np.ndarray
) -> np.ndarray:
    """Paste the garment's mask box, stretched to the inpainting mask's box, onto the
    agnostic person inside the mask (MV-VTON's start point ``warp_feat`` when no flow warp is
    available; also the paste baseline). All arrays ``(H, W[, 3])``, uint8 / bool."""
    out = agnostic.copy()
    target, source = mask_bbox(mask), mask_bbox(garment_mask)
    if target is None or source is None:
        return out
    t0, t1, l0, l1 = target
    s0, s1, c0, c1 = source
    crop = Image.fromarray(garment[s0:s1, c0:c1])
    crop_mask = Image.fromarray(garment_mask[s0:s1, c0:c1].astype(np.uint8) * 255)
    size = (l1 - l0, t1 - t0)
    crop = np.asarray(crop.resize(size, Image.BILINEAR))
    crop_mask = np.asarray(crop_mask.resize(size, Image.NEAREST)) > 0
    region = out[t0:t1, l0:l1]
    keep = crop_mask & mask[t0:t1, l0:l1]
    region[keep] = crop[keep]
    return out
