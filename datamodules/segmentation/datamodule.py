"""LightningDataModules: semantic segmentation and text-conditioned (grounding/referring).

Constructor arguments are the CLI options (``--data.init_args.<name>``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Literal

import lightning as L
from torch.utils.data import DataLoader, Dataset

from tessera.datamodules.common import OnError, collate_skipping
from tessera.datamodules.common.predict import PredictFilterMixin
from tessera.datamodules.segmentation.datasets import (
    GroundingDataset,
    SemanticDataset,
    seed_worker,
)
from tessera.datamodules.segmentation.grounding import read_pairs, read_refcoco, read_vizwiz
from tessera.datamodules.segmentation.io import MaskFormat
from tessera.datamodules.segmentation.layouts import Layout, list_folder, list_items
from tessera.datamodules.segmentation.transforms import RandomScaleCropFlip


class SegmentationDataModule(PredictFilterMixin, L.LightningDataModule, ABC):
    """Shared loader plumbing; subclasses build the datasets.

    Args:
        data_root: dataset folder.
        size: side of the square network input (crop size in training).
        scale_range: random rescale range for training (``[1, 1]`` = none).
        flip: random horizontal flips in training.
        batch_size: samples per batch.
        num_workers: DataLoader worker processes.
        on_error: ``raise`` or ``skip`` unreadable items in training/evaluation (prediction
            always skips and lists them in its summary).
        train_split, val_split, test_split: split names.
    """

    def __init__(
        self,
        data_root: str,
        size: int = 64,
        scale_range: tuple[float, float] = (0.75, 1.25),
        flip: bool = True,
        batch_size: int = 16,
        num_workers: int = 0,
        on_error: OnError = "raise",
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "test",
    ):
        super().__init__()
        self.data_root = Path(data_root)
        self.size = size
        self.scale_range = tuple(scale_range)
        self.flip = flip
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.on_error = on_error
        self.splits = {"fit": train_split, "validate": val_split, "test": test_split}

    def augmentation(self, ignore_index: int = 255) -> RandomScaleCropFlip:
        return RandomScaleCropFlip(
            (self.size, self.size), self.scale_range, 0.5 if self.flip else 0.0, ignore_index
        )

    @abstractmethod
    def build(self, split: str, train: bool, on_error: OnError) -> Dataset:
        """The dataset of one split."""

    @abstractmethod
    def build_predict(self) -> Dataset:
        """The dataset of the items to predict."""

    def _loader(self, dataset: Dataset, shuffle: bool = False) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=collate_skipping(),
            worker_init_fn=seed_worker,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.build(self.splits["fit"], True, self.on_error), shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.build(self.splits["validate"], False, self.on_error))

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.build(self.splits["test"], False, self.on_error))

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.build_predict())


class SemanticDataModule(SegmentationDataModule):
    """Semantic / medical segmentation from label maps.

    Args:
        layout: ``mmseg`` (``img_dir``/``ann_dir``), ``voc`` or ``isic`` (binary 0/255).
        num_classes: declared classes (label values outside them are an error).
        ignore_index: unlabeled value (dropped from loss and metrics).
        reduce_zero_label: treat 0 as unlabeled and shift classes down (mmseg semantics).
        mask_format: ``index`` or ``binary255``; the ``isic`` layout forces ``binary255``.
        img_suffix, seg_map_suffix: file suffixes of the ``mmseg`` layout.
        predict_split: split to predict (with labels: the summary reports metrics).
        predict_dir: folder of images to predict instead of a split.
        **kwargs: see :class:`SegmentationDataModule`.
    """

    def __init__(
        self,
        data_root: str,
        layout: Layout = "mmseg",
        num_classes: int = 4,
        ignore_index: int = 255,
        reduce_zero_label: bool = False,
        mask_format: MaskFormat = "index",
        img_suffix: str = ".png",
        seg_map_suffix: str = ".png",
        predict_split: str = "test",
        predict_dir: str | None = None,
        **kwargs,
    ):
        super().__init__(data_root, **kwargs)
        self.layout = layout
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.reduce_zero_label = reduce_zero_label
        self.mask_format: MaskFormat = "binary255" if layout == "isic" else mask_format
        self.suffixes = (img_suffix, seg_map_suffix)
        self.predict_split = predict_split
        self.predict_dir = predict_dir

    def _dataset(self, items, train: bool, on_error: OnError) -> SemanticDataset:
        return SemanticDataset(
            items,
            num_classes=self.num_classes,
            ignore_index=self.ignore_index,
            reduce_zero_label=self.reduce_zero_label,
            mask_format=self.mask_format,
            size=self.size,
            augment=self.augmentation(self.ignore_index) if train else None,
            on_error=on_error,
        )

    def build(self, split: str, train: bool, on_error: OnError) -> SemanticDataset:
        items = list_items(self.data_root, split, self.layout, *self.suffixes)
        return self._dataset(items, train, on_error)

    def build_predict(self) -> SemanticDataset:
        if self.predict_dir:
            items = list_folder(self.predict_dir)
        else:
            items = list_items(self.data_root, self.predict_split, self.layout, *self.suffixes)
        return self._dataset(self.keep_for_predict(items, lambda i: i[0]), False, "skip")


class GroundingDataModule(SegmentationDataModule):
    """Text-conditioned segmentation: VizWiz-VQA-Grounding or RefCOCO-family annotations.

    Args:
        format: ``vizwiz`` (``<split>_grounding.json`` + ``binary_masks_png``) or ``refcoco``.
        refcoco_dataset, split_by: RefCOCO files ``<dataset>/refs(<split_by>).p``.
        image_root: RefCOCO image folder (default ``<data_root>/images``).
        predict_json: JSON of (image, question) pairs to predict; default: the
            ``predict_split`` of ``data_root`` (then the summary reports metrics).
        predict_split: split to predict when no ``predict_json`` is given.
        **kwargs: see :class:`SegmentationDataModule`; ``scale_range`` defaults to no
            rescale so crops never cut the referent out.
    """

    def __init__(
        self,
        data_root: str,
        format: Literal["vizwiz", "refcoco"] = "vizwiz",
        refcoco_dataset: str = "refcoco",
        split_by: str = "unc",
        image_root: str | None = None,
        predict_json: str | None = None,
        predict_split: str = "test",
        scale_range: tuple[float, float] = (1.0, 1.0),
        **kwargs,
    ):
        super().__init__(data_root, scale_range=scale_range, **kwargs)
        if format not in ("vizwiz", "refcoco"):
            raise ValueError(f"format must be 'vizwiz' or 'refcoco', got {format!r}")
        self.format = format
        self.refcoco = dict(dataset=refcoco_dataset, split_by=split_by, image_root=image_root)
        self.predict_json = predict_json
        self.predict_split = predict_split

    def items(self, split: str):
        if self.format == "vizwiz":
            return read_vizwiz(self.data_root, split)
        return read_refcoco(self.data_root, split, **self.refcoco)

    def build(self, split: str, train: bool, on_error: OnError, **kwargs) -> GroundingDataset:
        augment = self.augmentation(ignore_index=255) if train else None
        return GroundingDataset(self.items(split), self.size, augment, on_error, **kwargs)

    def build_predict(self) -> GroundingDataset:
        items = (
            read_pairs(self.predict_json) if self.predict_json else self.items(self.predict_split)
        )
        return GroundingDataset(
            self.keep_for_predict(items, lambda i: i.item_id), self.size, None, "skip"
        )
