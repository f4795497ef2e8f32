"""Python API: ``load()`` a keypoint estimator or a 3-D lifter, and weight files.

>>> from tessera.apps.pose import load
>>> estimator = load("pose-psa-tiny")                 # registry name or a file
>>> people = estimator("photo.jpg", boxes=[[x, y, w, h]])   # or boxes=None: whole image
>>> people.keypoints                                   # (N, 17, 3): x, y, score (COCO order)
>>> lifter = load("pose-lifter-tiny")
>>> joints = lifter(people_over_time, image_size=(w, h), layout="coco")  # (T, 17, 3) m
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tessera.apps.common.weights import read_weights, save_weights
from tessera.apps.pose.decoding import decode_batch, predict_heatmaps
from tessera.apps.pose.module import PoseLifting, TopDownPose
from tessera.datamodules.pose.datasets import read_rgb, to_tensor
from tessera.datamodules.pose.h36m import normalize_screen_coordinates
from tessera.datamodules.pose.skeleton import coco_to_h36m
from tessera.datamodules.pose.topdown import (
    bbox_center_scale,
    fix_aspect_ratio,
    warp_image,
    warp_matrix,
)

TASK = "pose"

__all__ = ["KeypointEstimator", "Lifter3D", "PoseResult", "export", "load", "load_module"]


@dataclass
class PoseResult:
    """Keypoints of the persons in one image.

    Attributes:
        keypoints: ``(N, 17, 3)`` x, y (image pixels) and heatmap confidence, COCO order.
        boxes: ``(N, 4)`` the ``xywh`` boxes used.
        scores: ``(N,)`` mmpose's instance score (box score × mean confident keypoint score).
    """

    keypoints: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray


def _image(image) -> Image.Image:
    if isinstance(image, (str, Path)):
        return read_rgb(image)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            image = np.clip(image, 0, 255).astype(np.uint8)
        return Image.fromarray(image).convert("RGB")
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    raise TypeError(f"image must be a path, a PIL image or an (H, W, 3) array, got {type(image)}")


class KeypointEstimator:
    """Top-down COCO keypoints for given person boxes (the whole image when none)."""

    def __init__(self, module: TopDownPose, device="cpu"):
        self.module = module.to(device).eval()
        self.device = torch.device(device)

    @torch.no_grad()
    def __call__(self, image, boxes=None, box_scores=None) -> PoseResult:
        """Keypoints for ``boxes`` (``[[x, y, w, h], ...]`` image pixels; None = whole image).

        Raises:
            ValueError: a box with zero or negative size, or fully outside the image.
        """
        pil = _image(image)
        width, height = pil.size
        boxes = np.array([[0, 0, width, height]] if boxes is None else boxes, dtype=np.float64)
        boxes = boxes.reshape(-1, 4)
        for b in boxes:
            if b[2] <= 0 or b[3] <= 0:
                raise ValueError(f"box {b.tolist()} has no area (x, y, w, h with w, h > 0)")
            if b[0] >= width or b[1] >= height or b[0] + b[2] <= 0 or b[1] + b[3] <= 0:
                raise ValueError(f"box {b.tolist()} lies outside the {width}x{height} image")
        hp = self.module.hparams
        aspect = hp.input_size[0] / hp.input_size[1]
        centers, scales, crops = [], [], []
        for b in boxes:
            c, s = bbox_center_scale(b)
            s = fix_aspect_ratio(s, aspect)
            crops.append(
                to_tensor(
                    warp_image(pil, warp_matrix(c, s, 0, hp.input_size, hp.use_udp), hp.input_size)
                )
            )
            centers.append(c)
            scales.append(s)
        images = torch.stack(crops).to(self.device)
        heatmaps = predict_heatmaps(self.module.net, images, hp.flip_test, not hp.use_udp)
        kpts, kscores = decode_batch(
            heatmaps,
            self.module.codec,
            np.array(centers),
            np.array(scales),
            hp.input_size,
            hp.use_udp,
        )
        box_scores = np.ones(len(boxes)) if box_scores is None else np.asarray(box_scores)
        from tessera.apps.pose.metrics import rescore

        scores = np.array(
            [rescore(k, s, hp.keypoint_score_thr) for k, s in zip(kscores, box_scores, strict=True)]
        )
        return PoseResult(np.concatenate([kpts, kscores[..., None]], -1), boxes, scores)


class Lifter3D:
    """2-D keypoint sequences → root-relative 3-D joints (H36M-17 order, metres)."""

    def __init__(self, module: PoseLifting, device="cpu"):
        self.module = module.to(device).eval()

    @property
    def frames(self) -> int:
        return self.module.hparams.frames

    def __call__(self, keypoints_2d, image_size, layout: str = "coco") -> np.ndarray:
        """Lift ``(T, 17, 2|3)`` pixel keypoints (``coco`` or ``h36m`` order) of a clip (or
        ``(17, 2)`` for one image) → ``(T, 17, 3)`` (``(17, 3)``), camera frame, y down."""
        kp = np.asarray(keypoints_2d, dtype=np.float64)
        single = kp.ndim == 2
        kp = kp[None] if single else kp
        if kp.ndim != 3 or kp.shape[1] != 17:
            raise ValueError(
                f"keypoints_2d must be (T, 17, 2), got {np.asarray(keypoints_2d).shape}"
            )
        kp = kp[..., :2]
        if layout == "coco":
            kp = coco_to_h36m(kp)
        elif layout != "h36m":
            raise ValueError(f"layout must be 'coco' or 'h36m', got {layout!r}")
        w, h = image_size
        joints = self.module.lift_sequence(
            normalize_screen_coordinates(kp, w, h).astype(np.float32)
        )
        return joints[0] if single else joints


def load_module(name_or_path, device="cpu"):
    """The LightningModule (``TopDownPose`` or ``PoseLifting``) of a weights file."""
    weights = read_weights(name_or_path, TASK)
    cls = TopDownPose if "input_size" in weights.hparams else PoseLifting
    return (
        weights.build(cls, pretrained=False, weights=None)
        if cls is TopDownPose
        else weights.build(cls, weights=None)
    )


def load(name_or_path, device="cpu") -> KeypointEstimator | Lifter3D:
    """A :class:`KeypointEstimator` or :class:`Lifter3D` from a registry name, a
    ``.safetensors`` written by :func:`export`, or a Lightning ``.ckpt`` of ``fit``."""
    module = load_module(name_or_path, device)
    if isinstance(module, TopDownPose):
        return KeypointEstimator(module, device)
    return Lifter3D(module, device)


def export(module, path) -> Path:
    """Write ``module`` as a self-describing safetensors file (hparams in the metadata)."""
    hparams = {k: v for k, v in dict(module.hparams).items() if k != "weights"}
    return save_weights(path, module, task=TASK, hparams=hparams)
