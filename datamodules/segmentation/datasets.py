"""Datasets: semantic (label maps) and grounding (image + text -> binary mask).

Samples are dicts: ``item_id``, ``path`` (image file), ``image`` float ``(3, h, w)`` in
[0, 1] (the network input), ``img_size`` ``(2,)`` = (h, w) of that input before padding,
``orig_size`` ``(2,)`` = (H, W) of the file, ``text`` for grounding, and either

- ``label`` int64 ``(h, w)`` aligned with ``image`` (training: augmented crops), or
- ``target`` int64 ``(H, W)`` at the file's resolution (evaluation, prediction with
  references): metrics are computed there, as mmseg and the GRES/LAVT evaluations do.

Readers raise :class:`DataError`; under ``on_error="skip"`` an unreadable item becomes a
:class:`SkippedItem`. :func:`collate` pads network inputs of different sizes (keep-ratio
resizing) and keeps full-resolution targets as a list.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, default_collate

from tessera.datamodules.common import DataError, OnError, load_item
from tessera.datamodules.segmentation.grounding import GroundingItem, coco_mask
from tessera.datamodules.segmentation.io import LabelSpec, read_binary_mask, read_image, read_label
from tessera.datamodules.segmentation.layouts import Item
from tessera.datamodules.segmentation.transforms import (
    RandomScaleCropFlip,
    keep_ratio_size,
    resize_pair,
)

Resize = Callable[[int, int], tuple[int, int]]


def _keep_ratio(h: int, w: int, scale: tuple[int, int] | None) -> tuple[int, int]:
    return (h, w) if scale is None else keep_ratio_size(h, w, scale)


def _fixed(h: int, w: int, size: tuple[int, int]) -> tuple[int, int]:
    return size


def keep_ratio(scale: Sequence[int] | None) -> Resize:
    """Evaluation resize: mmseg ``Resize(scale, keep_ratio=True)``; None keeps the size."""
    return partial(_keep_ratio, scale=tuple(scale) if scale is not None else None)


def fixed_size(size: Sequence[int]) -> Resize:
    """Evaluation resize to a fixed (H, W) (the referring-segmentation protocol)."""
    return partial(_fixed, size=tuple(size))


def collate(items: Sequence[dict]) -> dict:
    """Stack samples: images zero-padded bottom/right to the largest, ``target`` a list."""
    batch = {}
    images = [i["image"] for i in items]
    h = max(im.shape[-2] for im in images)
    w = max(im.shape[-1] for im in images)
    batch["image"] = torch.stack(
        [F.pad(im, (0, w - im.shape[-1], 0, h - im.shape[-2])) for im in images]
    )
    if "target" in items[0]:
        batch["target"] = [i["target"] for i in items]
    rest = [{k: v for k, v in i.items() if k not in ("image", "target")} for i in items]
    batch.update(default_collate(rest))
    return batch


def _to_tensors(image: np.ndarray, label: np.ndarray | None):
    img = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
    lab = torch.from_numpy(np.ascontiguousarray(label)).long() if label is not None else None
    return img, lab


def _check_same_size(image: np.ndarray, label: np.ndarray, image_path, label_path) -> None:
    if image.shape[:2] != label.shape:
        raise DataError(
            label_path,
            f"mask is {label.shape[1]}x{label.shape[0]} (WxH) but image {image_path} is "
            f"{image.shape[1]}x{image.shape[0]}",
            "masks must have exactly the image size",
        )


class _Base(Dataset):
    def __init__(
        self,
        resize: Resize,
        augment: RandomScaleCropFlip | None,
        on_error: OnError,
    ):
        self.resize = resize
        self.augment = augment
        self.on_error = on_error

    def _finish(self, item_id: str, path, image, label, text=None, **extra) -> dict:
        img, lab = _to_tensors(image, label)
        sample = {
            "item_id": item_id,
            "path": str(path),
            "orig_size": torch.tensor(image.shape[:2]),
            **extra,
        }
        if self.augment is not None and lab is not None:
            img, sample["label"], text = self.augment(img, lab, text)
        else:
            img, _ = resize_pair(img, None, self.resize(*image.shape[:2]))
            if lab is not None:
                sample["target"] = lab
        sample["image"] = img
        sample["img_size"] = torch.tensor(img.shape[-2:])
        if text is not None:
            sample["text"] = text
        return sample


class SemanticDataset(_Base):
    """Images and label maps from :func:`~tessera.datamodules.segmentation.layouts.list_items`.

    Args:
        items: ``(item_id, image_path, label_path | None)``.
        spec: how label values become classes (:class:`LabelSpec`).
        resize: evaluation input size from the file's (H, W) (default: unchanged).
        augment: aligned augmentation for training, None for evaluation/prediction.
        on_error: ``"raise"`` or ``"skip"``.
        binary: the masks are 0/255 foreground masks (predictions are written as 0/255).
    """

    def __init__(
        self,
        items: Sequence[Item],
        spec: LabelSpec,
        resize: Resize | None = None,
        augment: RandomScaleCropFlip | None = None,
        on_error: OnError = "raise",
        binary: bool = False,
    ):
        super().__init__(resize or keep_ratio(None), augment, on_error)
        self.items = list(items)
        self.spec = spec
        self.binary = binary

    def __len__(self) -> int:
        return len(self.items)

    def _read(self, i: int) -> dict:
        item_id, image_path, label_path = self.items[i]
        image = read_image(image_path)
        label = None
        if label_path is not None:
            label = read_label(label_path, self.spec)
            _check_same_size(image, label, image_path, label_path)
        return self._finish(item_id, image_path, image, label, binary=self.binary)

    def __getitem__(self, i: int):
        item_id, image_path, _ = self.items[i]
        return load_item(item_id, image_path, lambda: self._read(i), self.on_error)


class GroundingDataset(_Base):
    """(image, text) pairs with binary target masks (empty mask = no referent).

    Args:
        items: :class:`GroundingItem` s from the VizWiz / RefCOCO / pairs readers.
        size: side of the square network input (evaluation resizes to it; metrics are
            computed on the upsampled prediction at the file's resolution).
        augment: aligned augmentation (its flip swaps left/right words of the text).
        on_error: ``"raise"`` or ``"skip"``.
        text_transform: optional function applied to every text (e.g. to swap questions in
            a control experiment).
    """

    def __init__(
        self,
        items: Sequence[GroundingItem],
        size: int = 64,
        augment: RandomScaleCropFlip | None = None,
        on_error: OnError = "raise",
        text_transform: Callable[[int, str], str] | None = None,
    ):
        super().__init__(fixed_size((size, size)), augment, on_error)
        self.items = list(items)
        self.text_transform = text_transform

    def __len__(self) -> int:
        return len(self.items)

    def _read(self, i: int) -> dict:
        item = self.items[i]
        image = read_image(item.image)
        label = None
        if item.mask_path is not None and item.has_mask:
            label = read_binary_mask(item.mask_path)
            _check_same_size(image, label, item.image, item.mask_path)
        elif item.has_mask:
            label = coco_mask(item.segmentations, *image.shape[:2])
        text = item.text if self.text_transform is None else self.text_transform(i, item.text)
        return self._finish(item.item_id, item.image, image, label, text)

    def __getitem__(self, i: int):
        item = self.items[i]
        return load_item(item.item_id, item.image, lambda: self._read(i), self.on_error)


def seed_worker(worker_id: int) -> None:
    """Seeds python's ``random`` in each DataLoader worker from torch's per-worker seed."""
    random.seed(torch.initial_seed() % 2**32)
