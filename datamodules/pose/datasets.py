"""Torch datasets: top-down person crops with heatmap targets, and 2-D→3-D lifting windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset

from tessera.datamodules.common import DataError, OnError, load_item
from tessera.datamodules.pose.coco import PersonInstance
from tessera.datamodules.pose.h36m import Sequence
from tessera.datamodules.pose.skeleton import (
    COCO_FLIP_PAIRS,
    H36M_LEFT,
    H36M_RIGHT,
    flip_permutation,
)
from tessera.datamodules.pose.topdown import (
    Augmentation,
    apply_affine,
    bbox_center_scale,
    fix_aspect_ratio,
    flip_keypoints,
    half_body_box,
    random_box_transform,
    warp_image,
    warp_matrix,
)

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
COCO_FLIP = flip_permutation(17, COCO_FLIP_PAIRS)
H36M_FLIP = flip_permutation(17, list(zip(H36M_LEFT, H36M_RIGHT, strict=True)))


def read_rgb(path: str | Path) -> Image.Image:
    """Any image mode (L, P, RGBA, CMYK, 16-bit, float) as 8-bit RGB; EXIF orientation is
    not applied (COCO keypoints are in stored pixel order)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "image not found", "check the image folder of the split")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                arr = np.asarray(im, dtype=np.float64)
                span = max(arr.max() - arr.min(), 1e-9)
                im = Image.fromarray(((arr - arr.min()) / span * 255).astype(np.uint8))
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise DataError(path, f"cannot decode image ({err})", "re-download or remove it") from err


def to_tensor(crop: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 → ``(3, H, W)`` float, ImageNet-normalised."""
    x = (crop.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(x.transpose(2, 0, 1).copy())


class TopDownDataset(Dataset):
    """Person crops ``(3, H, W)`` with heatmap targets from ``codec``.

    Args:
        instances: person boxes (with ground-truth keypoints for training).
        input_size: crop ``(W, H)``.
        codec: heatmap codec (``encode``/``decode``), or None for inference only.
        use_udp: unbiased affine (pair with the UDP codec).
        padding: box padding (1.25).
        augmentation: training augmentation, None for evaluation/prediction.
        on_error: ``raise`` or ``skip`` unreadable images.
        seed: augmentation seed (mixed with the item index and epoch).
    """

    def __init__(
        self,
        instances: list[PersonInstance],
        input_size,
        codec=None,
        use_udp: bool = False,
        padding: float = 1.25,
        augmentation: Augmentation | None = None,
        on_error: OnError = "raise",
        seed: int = 0,
    ):
        self.instances = instances
        self.input_size = tuple(int(v) for v in input_size)
        self.codec, self.use_udp, self.padding = codec, use_udp, padding
        self.augmentation, self.on_error, self.seed = augmentation, on_error, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.instances)

    def __getitem__(self, index: int):
        inst = self.instances[index]
        return load_item(inst.item_id, inst.image_path, lambda: self._load(index), self.on_error)

    def _load(self, index: int) -> dict:
        inst = self.instances[index]
        image = read_rgb(inst.image_path)
        width, height = image.size
        aspect = self.input_size[0] / self.input_size[1]
        center, scale = bbox_center_scale(inst.bbox, self.padding)
        if inst.bbox[2] <= 0 or inst.bbox[3] <= 0:  # whole-image boxes of unreadable sizes
            center, scale = np.array([width / 2, height / 2]), np.array([width, height], float)
        kpts = None if inst.keypoints is None else inst.keypoints.copy()
        rotation, flipped = 0.0, False
        aug = self.augmentation
        if aug is not None and kpts is not None:
            # mmpose order: RandomFlip → RandomHalfBody → RandomBBoxTransform → TopdownAffine
            rng = np.random.default_rng((self.seed, self.epoch, index))
            if rng.random() < aug.flip_prob:
                flipped = True
                image = ImageOps.mirror(image)
                kpts = flip_keypoints(kpts, width, COCO_FLIP)
                center = np.array([width - 1 - center[0], center[1]])
            labelled = kpts[:, 2] > 0
            # mmpose skips persons with fewer than min_total_keypoints labelled
            if labelled.sum() >= aug.half_body_min_keypoints and rng.random() < aug.half_body_prob:
                half = half_body_box(kpts[:, :2], kpts[:, 2], rng, aug.upper_prob)
                if half is not None:
                    center, scale = half
            center, scale, rotation = random_box_transform(center, scale, aug, rng)
        scale = fix_aspect_ratio(scale, aspect)
        matrix = warp_matrix(center, scale, rotation, self.input_size, self.use_udp)
        crop = warp_image(image, matrix, self.input_size)
        item = {
            "item_id": inst.item_id,
            "image": to_tensor(crop),
            "center": torch.tensor(center, dtype=torch.float64),
            "scale": torch.tensor(scale, dtype=torch.float64),
            "rotation": torch.tensor(rotation, dtype=torch.float64),
            "flipped": torch.tensor(flipped),
            "bbox_score": torch.tensor(inst.bbox_score, dtype=torch.float64),
            "image_id": torch.tensor(inst.image_id),
            "image_size": torch.tensor([width, height]),
        }
        gt = np.zeros((17, 3)) if kpts is None else kpts
        item["gt_keypoints"] = torch.tensor(gt, dtype=torch.float64)
        item["bbox"] = torch.tensor(inst.bbox, dtype=torch.float64)
        if self.codec is not None and kpts is not None:
            in_crop = apply_affine(kpts[:, :2], matrix)
            w_in, h_in = self.input_size
            inside = (
                (in_crop[:, 0] >= 0)
                & (in_crop[:, 0] <= w_in - 1)
                & (in_crop[:, 1] >= 0)
                & (in_crop[:, 1] <= h_in - 1)
            )
            heatmaps, weights = self.codec.encode(in_crop, (kpts[:, 2] > 0) & inside)
            item["heatmaps"] = torch.from_numpy(heatmaps)
            item["keypoint_weights"] = torch.from_numpy(weights)
        return item


class LiftingDataset(Dataset):
    """Windows of ``frames`` 2-D poses centred on each target frame (edge-padded), as the
    receptive field of VideoPose3D-style temporal lifters.

    Args:
        sequences: clips from :func:`~.h36m.build_sequences`.
        frames: receptive field T (odd).
        stride: use every ``stride``-th centre frame (training subsampling).
        flip_prob: horizontal flip of 2-D and 3-D with the left/right swap (training).
    """

    def __init__(
        self,
        sequences: list[Sequence],
        frames: int = 27,
        stride: int = 1,
        flip_prob: float = 0.0,
        seed: int = 0,
    ):
        if frames < 1 or frames % 2 == 0:
            raise ValueError(f"frames (receptive field) must be odd and >= 1, got {frames}")
        self.sequences, self.frames, self.flip_prob, self.seed = sequences, frames, flip_prob, seed
        self.index = [
            (s, f) for s, seq in enumerate(sequences) for f in range(0, len(seq.poses_2d), stride)
        ]
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        s, f = self.index[i]
        seq = self.sequences[s]
        pad = self.frames // 2
        idx = np.clip(np.arange(f - pad, f + pad + 1), 0, len(seq.poses_2d) - 1)
        poses_2d = seq.poses_2d[idx].copy()
        target = seq.poses_3d[f].copy()
        if self.flip_prob > 0:
            rng = np.random.default_rng((self.seed, self.epoch, i))
            if rng.random() < self.flip_prob:
                poses_2d, target = flip_2d(poses_2d), flip_3d(target)
        return {
            "item_id": f"{seq.subject}/{seq.action}/{seq.camera}/{f}",
            "action": seq.action,
            "poses_2d": torch.from_numpy(poses_2d),
            "target": torch.from_numpy(target),
            "sequence": torch.tensor(s),
            "frame": torch.tensor(f),
        }


def flip_2d(poses: np.ndarray) -> np.ndarray:
    """Mirror normalised 2-D poses ``(..., 17, 2)`` (x → -x, left ↔ right)."""
    out = poses[..., H36M_FLIP, :].copy()
    out[..., 0] *= -1
    return out


def flip_3d(poses: np.ndarray) -> np.ndarray:
    """Mirror camera-frame 3-D poses ``(..., 17, 3)``."""
    out = poses[..., H36M_FLIP, :].copy()
    out[..., 0] *= -1
    return out
