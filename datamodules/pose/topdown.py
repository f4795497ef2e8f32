"""Top-down person crops as mmpose prepares them (``GetBBoxCenterScale`` → ``RandomFlip`` →
``RandomHalfBody`` → ``RandomBBoxTransform`` → ``TopdownAffine``).

Conventions (pixel centres at integer coordinates):
- a box ``(x, y, w, h)`` becomes ``center = (x + w/2, y + h/2)``, ``scale = (w, h) * padding``
  (padding 1.25), widened or heightened to the crop's aspect ratio;
- the affine maps ``center`` to the crop centre and ``scale`` to the crop size, rotated by
  ``rotation`` degrees: standard ``dst = (W / s_w) R(-θ)(p - c) + (W/2, H/2)``; with UDP
  (Huang et al., CVPR 2020) the crop spans ``W - 1`` pixels,
  ``dst = diag((W-1)/s_w, (H-1)/s_h) R(-θ)(p - c) + ((W-1)/2, (H-1)/2)``, which removes the
  half-pixel bias of flipping and resizing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from tessera.datamodules.pose.skeleton import COCO_LOWER_BODY, COCO_UPPER_BODY


def bbox_center_scale(bbox_xywh, padding: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """``center (2,)`` and ``scale (2,)`` (box size times ``padding``) of an ``xywh`` box."""
    x, y, w, h = (float(v) for v in bbox_xywh)
    return np.array([x + w * 0.5, y + h * 0.5]), np.array([w, h]) * padding


def fix_aspect_ratio(scale, aspect_ratio: float) -> np.ndarray:
    """Grow the shorter side of ``scale (w, h)`` so that ``w / h == aspect_ratio``."""
    w, h = (float(v) for v in scale)
    if w > h * aspect_ratio:
        return np.array([w, w / aspect_ratio])
    return np.array([h * aspect_ratio, h])


def warp_matrix(center, scale, rotation: float, output_size, use_udp: bool = False) -> np.ndarray:
    """``(2, 3)`` affine from image pixels to crop pixels (see the module docstring).

    Args:
        center: ``(2,)`` box centre (x, y).
        scale: ``(2,)`` box size (w, h) after padding and aspect fixing.
        rotation: degrees, counter-clockwise in the image as displayed.
        output_size: crop ``(W, H)``.
    """
    out_w, out_h = output_size
    theta = math.radians(rotation)
    cos, sin = math.cos(theta), math.sin(theta)
    rot = np.array([[cos, sin], [-sin, cos]])  # R(-θ) in image coordinates (y down)
    if use_udp:
        stretch = np.diag([(out_w - 1) / scale[0], (out_h - 1) / scale[1]])
        offset = np.array([(out_w - 1) / 2, (out_h - 1) / 2])
    else:
        stretch = np.eye(2) * (out_w / scale[0])
        offset = np.array([out_w / 2, out_h / 2])
    linear = stretch @ rot
    return np.concatenate([linear, (offset - linear @ np.asarray(center))[:, None]], axis=1)


def apply_affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``(..., 2)`` points through a ``(2, 3)`` affine."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def warp_image(image: Image.Image, matrix: np.ndarray, output_size) -> np.ndarray:
    """Crop ``image`` through ``matrix`` (bilinear, zeros outside) → ``(H, W, 3)`` uint8.

    PIL samples the source at ``A (x + ½) + c`` for output pixel ``x`` and treats pixel
    centres as ``+½``; the constant is chosen so that crop pixel ``x`` reads image point
    ``M⁻¹ x`` with integer pixel centres, as ``cv2.warpAffine`` does.
    """
    full = np.vstack([matrix, [0, 0, 1]])
    inv = np.linalg.inv(full)[:2]
    a = inv[:, :2]
    c = inv[:, 2] - a @ np.array([0.5, 0.5]) + 0.5
    data = (a[0, 0], a[0, 1], c[0], a[1, 0], a[1, 1], c[1])
    out = image.convert("RGB").transform(
        tuple(int(v) for v in output_size),
        Image.Transform.AFFINE,
        data,
        resample=Image.Resampling.BILINEAR,
        fillcolor=(0, 0, 0),
    )
    return np.asarray(out)


@dataclass
class Augmentation:
    """Training augmentation of mmpose's COCO top-down recipes (``RandomFlip``,
    ``RandomHalfBody``, ``RandomBBoxTransform`` in ``open-mmlab/mmpose``,
    ``mmpose/datasets/transforms/common_transforms.py``; defaults as there).

    Args:
        flip_prob: horizontal flip of the whole image, ``x → width - 1 - x`` for the
            keypoints and the box centre, with the left/right keypoint (and visibility) swap.
        half_body_prob: crop to the upper or lower body when at least
            ``half_body_min_keypoints`` keypoints are labelled (mmpose's
            ``min_total_keypoints``: it skips a person with fewer, so 9 labelled suffice);
            the half needs ≥2 upper / ≥3 lower labelled keypoints; box padding 1.5.
        upper_prob: chance that the upper body is chosen when both halves qualify.
        shift_factor, shift_prob: with probability ``shift_prob`` the centre moves by
            ``t * shift_factor * scale`` per axis, ``t ~ N(0, 1)`` truncated to ``[-1, 1]``.
        scale_range, scale_prob: with probability ``scale_prob`` the box is rescaled by
            ``mu + t * sigma``, ``(mu, sigma)`` the centre and half-width of the range,
            ``t`` truncated normal as above.
        rotate_factor, rotate_prob: with probability ``rotate_prob`` a rotation of
            ``t * rotate_factor`` degrees, ``t`` truncated normal as above.
    """

    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    half_body_min_keypoints: int = 9
    upper_prob: float = 0.7
    shift_factor: float = 0.16
    shift_prob: float = 0.3
    scale_range: tuple[float, float] = (0.5, 1.5)
    scale_prob: float = 1.0
    rotate_factor: float = 80.0
    rotate_prob: float = 0.6


HALF_BODY_PADDING = 1.5
MIN_UPPER_KEYPOINTS, MIN_LOWER_KEYPOINTS = 2, 3


def flip_keypoints(keypoints: np.ndarray, width: int, permutation) -> np.ndarray:
    """Mirror ``(K, 3)`` x, y, v keypoints of an image ``width`` pixels wide: rows (so also
    the visibility) swapped by the left/right ``permutation``, ``x → width - 1 - x`` for the
    labelled ones (unlabelled stay at their placeholder)."""
    out = np.asarray(keypoints, dtype=np.float64)[np.asarray(permutation)].copy()
    out[:, 0] = np.where(out[:, 2] > 0, width - 1 - out[:, 0], out[:, 0])
    return out


def half_body_box(
    keypoints: np.ndarray,
    visible: np.ndarray,
    rng,
    upper_prob: float,
    padding: float = HALF_BODY_PADDING,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Centre and scale (``(2,)`` each) around the labelled upper- or lower-body keypoints
    (mmpose ``RandomHalfBody``): the mean of the chosen keypoints and their extent times
    ``padding`` (the aspect ratio is fixed later, as ``TopdownAffine`` does); None when
    neither half has enough labelled keypoints (≥2 upper, ≥3 lower)."""
    upper = [j for j in COCO_UPPER_BODY if visible[j] > 0]
    lower = [j for j in COCO_LOWER_BODY if visible[j] > 0]
    upper_ok, lower_ok = len(upper) >= MIN_UPPER_KEYPOINTS, len(lower) >= MIN_LOWER_KEYPOINTS
    if not upper_ok and not lower_ok:
        return None
    pick_upper = upper_ok and (not lower_ok or rng.random() < upper_prob)
    chosen = np.asarray(keypoints, dtype=np.float64)[upper if pick_upper else lower]
    center = chosen.mean(axis=0)
    return center, (chosen.max(axis=0) - chosen.min(axis=0)) * padding


def truncated_normal(rng, size=None) -> np.ndarray | float:
    """Standard normal samples truncated to ``[-1, 1]`` (rejection: redraw outside), the
    ``scipy.stats.truncnorm(-1, 1)`` that mmpose's ``RandomBBoxTransform`` draws from."""
    n = int(np.prod(size)) if size is not None else 1
    out = np.empty(0)
    while out.size < n:
        z = rng.standard_normal(2 * n)
        out = np.concatenate([out, z[np.abs(z) <= 1]])
    out = out[:n]
    return float(out[0]) if size is None else out.reshape(size)


def random_box_transform(center, scale, aug: Augmentation, rng):
    """Shift, rescale and rotate a box (mmpose ``RandomBBoxTransform``, see
    :class:`Augmentation` for the distributions) → ``center (2,), scale (2,), rotation``.

    The shift is a fraction of ``scale`` as given (mmpose shifts by the padded box size
    before ``TopdownAffine`` fixes the aspect ratio)."""
    center = np.array(center, dtype=np.float64)
    scale = np.array(scale, dtype=np.float64)
    t_shift, t_scale, t_rot = truncated_normal(rng, 2), truncated_normal(rng), truncated_normal(rng)
    if rng.random() < aug.shift_prob:
        center = center + t_shift * aug.shift_factor * scale
    if rng.random() < aug.scale_prob:
        lo, hi = aug.scale_range
        scale = scale * ((hi + lo) / 2 + t_scale * (hi - lo) / 2)
    rot = float(t_rot * aug.rotate_factor) if rng.random() < aug.rotate_prob else 0.0
    return center, scale, rot
