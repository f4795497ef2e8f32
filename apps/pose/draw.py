"""Skeleton overlays: COCO keypoints drawn over an image (the demo and ``predict --overlays``).

Joints are coloured from red (low heatmap confidence) to green (high) and drawn hollow below
a score threshold; limbs follow the COCO skeleton (``COCO_SKELETON``, 1-based pairs as in the
COCO ``categories`` entry), each coloured by the lower confidence of its two joints.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from tessera.datamodules.pose.skeleton import COCO_SKELETON

__all__ = ["confidence_colour", "draw_skeletons", "png_bytes"]


def confidence_colour(score: float) -> tuple[int, int, int]:
    """RGB for a confidence in [0, 1]: red (0) → green (1)."""
    s = float(np.clip(score, 0, 1))
    return int(255 * (1 - s)), int(200 * s + 40), 60


def draw_skeletons(
    image: Image.Image,
    keypoints: np.ndarray,
    boxes: Sequence[Sequence[float]] | None = None,
    threshold: float = 0.2,
    min_side: int = 0,
) -> Image.Image:
    """The persons' skeletons over a copy of ``image``.

    Args:
        image: the picture (any PIL mode; drawn in RGB).
        keypoints: ``(17, 3)`` or ``(N, 17, 3)`` x, y (image pixels) and confidence, COCO order.
        boxes: optional ``xywh`` person boxes (image pixels) drawn as white rectangles.
        threshold: joints scored below it are drawn hollow.
        min_side: upscale (nearest neighbour) so the longer side is at least this many pixels;
            0 keeps the image's size.

    Returns:
        An RGB image of the input's size (times the upscale factor when ``min_side`` is set).
    """
    people = np.asarray(keypoints, dtype=np.float64).reshape(-1, 17, 3)  # (N, 17, 3)
    scale = max(1.0, min_side / max(image.size)) if min_side else 1.0
    img = image.convert("RGB")
    if scale > 1:
        size = (round(image.width * scale), round(image.height * scale))
        img = img.resize(size, resample=Image.Resampling.NEAREST)
    else:
        img = img.copy()
    draw = ImageDraw.Draw(img)
    for box in boxes if boxes is not None else []:
        x, y, w, h = (float(v) * scale for v in box)
        draw.rectangle([x, y, x + w, y + h], outline=(250, 250, 250), width=2)
    r = max(3, round(scale * 1.5))
    for person in people:
        xy = person[:, :2] * scale  # (17, 2) drawn pixels
        for a, b in COCO_SKELETON:  # 1-based pairs
            score = min(person[a - 1, 2], person[b - 1, 2])
            draw.line([tuple(xy[a - 1]), tuple(xy[b - 1])], fill=confidence_colour(score), width=3)
        for (x, y), score in zip(xy, person[:, 2], strict=True):
            colour = confidence_colour(score)
            fill = colour if score >= threshold else None
            draw.ellipse([x - r, y - r, x + r, y + r], outline=colour, fill=fill, width=2)
    return img


def png_bytes(image: Image.Image) -> bytes:
    """``image`` encoded as PNG (for :func:`~tessera.datamodules.common.atomic_write_bytes`)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
