"""Datasets: semantic (label maps) and grounding (image + text -> binary mask).

Samples are dicts: ``item_id``, ``path`` (image file), ``image`` float ``(3, S, S)`` in
[0, 1], ``label`` int64 ``(S, S)`` (absent when the item has no reference), ``orig_size``
``(2,)`` = (H, W) of the file, and ``text`` for grounding. Readers raise :class:`DataError`; under
``on_error="skip"`` an unreadable item becomes a :class:`SkippedItem`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from tessera.datamodules.common import DataError, OnError, load_item
from tessera.datamodules.segmentation.grounding import GroundingItem, coco_mask
from tessera.datamodules.segmentation.io import MaskFormat, read_image, read_label
from tessera.datamodules.segmentation.layouts import Item
from tessera.datamodules.segmentation.transforms import RandomScaleCropFlip, resize_pair


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
        size: int,
        augment: RandomScaleCropFlip | None,
        on_error: OnError,
    ):
        self.size = (size, size)
        self.augment = augment
        self.on_error = on_error

    def _finish(self, item_id: str, path, image, label, text=None) -> dict:
        img, lab = _to_tensors(image, label)
        sample = {
            "item_id": item_id,
            "path": str(path),
            "orig_size": torch.tensor(image.shape[:2]),
        }
        if self.augment is not None and lab is not None:
            img, lab, text = self.augment(img, lab, text)
        else:
            img, lab = resize_pair(img, lab, self.size)
        sample["image"] = img
        if lab is not None:
            sample["label"] = lab
        if text is not None:
            sample["text"] = text
        return sample


class SemanticDataset(_Base):
    """Images and label maps from :func:`~tessera.datamodules.segmentation.layouts.list_items`.

    Args:
        items: ``(item_id, image_path, label_path | None)``.
        num_classes, ignore_index, reduce_zero_label, mask_format: see
            :func:`~tessera.datamodules.segmentation.io.read_label`.
        size: side of the square network input (eval resize, or crop size when augmenting).
        augment: aligned augmentation for training, None to resize only.
        on_error: ``"raise"`` or ``"skip"``.
    """

    def __init__(
        self,
        items: Sequence[Item],
        num_classes: int,
        ignore_index: int = 255,
        reduce_zero_label: bool = False,
        mask_format: MaskFormat = "index",
        size: int = 64,
        augment: RandomScaleCropFlip | None = None,
        on_error: OnError = "raise",
    ):
        super().__init__(size, augment, on_error)
        self.items = list(items)
        self.label_args = dict(
            num_classes=num_classes,
            ignore_index=ignore_index,
            reduce_zero_label=reduce_zero_label,
            mask_format=mask_format,
        )

    def __len__(self) -> int:
        return len(self.items)

    def _read(self, i: int) -> dict:
        item_id, image_path, label_path = self.items[i]
        image = read_image(image_path)
        label = None
        if label_path is not None:
            label = read_label(label_path, **self.label_args)
            _check_same_size(image, label, image_path, label_path)
        return self._finish(item_id, image_path, image, label)

    def __getitem__(self, i: int):
        item_id, image_path, _ = self.items[i]
        return load_item(item_id, image_path, lambda: self._read(i), self.on_error)


class GroundingDataset(_Base):
    """(image, text) pairs with binary target masks (empty mask = no referent).

    Args:
        items: :class:`GroundingItem` s from the VizWiz / RefCOCO / pairs readers.
        size: side of the square network input.
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
        super().__init__(size, augment, on_error)
        self.items = list(items)
        self.text_transform = text_transform

    def __len__(self) -> int:
        return len(self.items)

    def _read(self, i: int) -> dict:
        item = self.items[i]
        image = read_image(item.image)
        label = None
        if item.mask_path is not None and item.has_mask:
            label = read_label(item.mask_path, num_classes=2, mask_format="binary255")
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
