"""LightningDataModules: semantic segmentation and text-conditioned (grounding/referring).

Constructor arguments are the CLI options (``--data.init_args.<name>``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import lightning as L
from torch.utils.data import DataLoader, Dataset

from tessera.datamodules.common import DataError, OnError, collate_skipping
from tessera.datamodules.common.predict import PredictFilterMixin
from tessera.datamodules.segmentation.datasets import (
    GroundingDataset,
    SemanticDataset,
    collate,
    keep_ratio,
    seed_worker,
)
from tessera.datamodules.segmentation.grounding import (
    read_grefcoco,
    read_pairs,
    read_refcoco,
    read_vizwiz,
)
from tessera.datamodules.segmentation.io import LabelSpec
from tessera.datamodules.segmentation.layouts import (
    ADE20K_CLASSES,
    CITYSCAPES_CLASSES,
    ISIC_CLASSES,
    VOC_CLASSES,
    Layout,
    LayoutSplit,
    list_folder,
    read_layout,
)
from tessera.datamodules.segmentation.scan import scan_labels
from tessera.datamodules.segmentation.transforms import RandomScaleCropFlip

LAYOUT_CLASSES = {
    "ade20k": ADE20K_CLASSES,
    "cityscapes": CITYSCAPES_CLASSES,
    "voc": VOC_CLASSES,
    "isic": ISIC_CLASSES,
}
NEEDS_LABELS = "fit, validate, test and evaluate need the labels (predict works without them)"


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


class SegmentationDataModule(PredictFilterMixin, L.LightningDataModule, ABC):
    """Shared loader plumbing; subclasses build the datasets.

    Args:
        data_root: dataset folder.
        size: training crop (H, W) or its side (grounding: also the evaluation input size).
        scale_range: ratio range of the random keep-ratio rescale in training (``[1, 1]`` =
            none).
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
        size: int | tuple[int, int] = 64,
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
        self.crop_size = _pair(size)
        self.scale_range = tuple(scale_range)
        self.flip = flip
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.on_error = on_error
        self.splits = {"fit": train_split, "validate": val_split, "test": test_split}

    def augmentation(self, ignore_index: int = 255, scale=None) -> RandomScaleCropFlip:
        return RandomScaleCropFlip(
            self.crop_size,
            self.scale_range,
            0.5 if self.flip else 0.0,
            ignore_index,
            scale=scale,
        )

    @abstractmethod
    def build(self, split: str, train: bool, on_error: OnError) -> Dataset:
        """The dataset of one labelled split (an error if it has no labels)."""

    @abstractmethod
    def build_predict(self) -> Dataset:
        """The dataset of the items to predict (labels optional)."""

    def _loader(self, dataset: Dataset, shuffle: bool = False) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=collate_skipping(collate),
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
    """Semantic / medical segmentation from label maps, in the layouts datasets ship in.

    Evaluation follows mmseg: each image is resized keeping its aspect ratio to ``scale``
    (none: kept at its size), and metrics are computed at the file's resolution.

    Args:
        layout: ``ade20k``, ``cityscapes``, ``voc``, ``isic`` or ``mmseg`` (see
            :mod:`~tessera.datamodules.segmentation.layouts`).
        num_classes: number of classes; the named layouts fix it (a different value is an
            error), ``mmseg`` needs it or ``class_names`` (no silent default).
        class_names: names of the classes (default: the layout's, or ``class<k>``).
        ignore_index: unlabeled value (dropped from loss and metrics).
        reduce_zero_label: 0 is "other": ignored, classes shift down by one (mmseg
            semantics; default: the layout's, True for ADE20K).
        label_map: raw file value -> class, applied first (e.g. ``{255: 1}``).
        binary: the masks are 0/255 foreground masks: ``label_map {255: 1}``, 2 classes,
            predictions written as 0/255 (default: True for ISIC).
        img_suffix: image suffix of the ``mmseg`` layout (default: detected).
        seg_map_suffix: label suffix of the ``mmseg`` layout.
        scale: (long, short) edge of mmseg's keep-ratio resize, in evaluation and (times the
            random ratio) in training, e.g. ``[2048, 512]`` for ADE20K.
        scan: check every label map of a split before using it (cached; see
            :func:`~tessera.datamodules.segmentation.scan.scan_labels`).
        predict_split: split to predict (with labels: the summary reports metrics).
        predict_dir: folder of images to predict instead of a split.
        **kwargs: see :class:`SegmentationDataModule`.
    """

    def __init__(
        self,
        data_root: str,
        layout: Layout = "mmseg",
        num_classes: int | None = None,
        class_names: list[str] | None = None,
        ignore_index: int = 255,
        reduce_zero_label: bool | None = None,
        label_map: dict[int, int] | None = None,
        binary: bool | None = None,
        img_suffix: str | None = None,
        seg_map_suffix: str = ".png",
        scale: tuple[int, int] | None = None,
        scan: bool = True,
        predict_split: str = "test",
        predict_dir: str | None = None,
        **kwargs,
    ):
        super().__init__(data_root, **kwargs)
        self.save_hyperparameters()  # recorded in Lightning checkpoints (evaluate reads them)
        self.layout = layout
        self.ignore_index = ignore_index
        self.reduce_zero_label = reduce_zero_label
        self.label_map = {int(k): int(v) for k, v in label_map.items()} if label_map else None
        self.binary = binary if binary is not None else layout == "isic"
        self.suffixes = (img_suffix, seg_map_suffix)
        self.scale = tuple(scale) if scale is not None else None
        self.scan = scan
        self.predict_split = predict_split
        self.predict_dir = predict_dir
        self.class_names = self._class_names(num_classes, class_names)
        self.num_classes = len(self.class_names)

    def _class_names(self, num_classes, class_names) -> list[str]:
        names = LAYOUT_CLASSES.get(self.layout)
        if self.binary and (names is None or len(names) != 2):
            names = ("background", "foreground")
        if class_names is not None:
            if names is not None and len(class_names) != len(names):
                raise ValueError(
                    f"the {self.layout} layout has {len(names)} classes, got "
                    f"{len(class_names)} class_names"
                )
            names = class_names
        elif names is None:
            if num_classes is None:
                raise ValueError(
                    "the mmseg layout needs num_classes (or class_names): set "
                    "--data.init_args.num_classes to the number of classes in your label maps"
                )
            names = [f"class{k}" for k in range(num_classes)]
        if num_classes is not None and num_classes != len(names):
            raise ValueError(
                f"num_classes={num_classes} but the {self.layout} layout / class_names give "
                f"{len(names)} classes"
            )
        return list(names)

    def label_spec(self, found: LayoutSplit) -> LabelSpec:
        """How this split's label values become classes (layout defaults, user options)."""
        user_map = self.label_map is not None
        reduce = self.reduce_zero_label
        return LabelSpec.build(
            self.num_classes,
            self.ignore_index,
            found.reduce_zero_label if reduce is None else reduce,
            self.label_map if user_map else found.label_map,
            None if user_map else found.label_map_default,
            binary=self.binary,
        )

    def _dataset(self, found: LayoutSplit, items, train: bool, on_error: OnError, split: str):
        spec = self.label_spec(found)
        labelled = [i for i in items if i[2] is not None]
        if self.scan and labelled:
            scan_labels(labelled, spec, split)
        return SemanticDataset(
            items,
            spec,
            resize=keep_ratio(self.scale),
            augment=self.augmentation(self.ignore_index, self.scale) if train else None,
            on_error=on_error,
            binary=self.binary,
        )

    def read(self, split: str) -> LayoutSplit:
        return read_layout(self.data_root, split, self.layout, *self.suffixes)

    def build(self, split: str, train: bool, on_error: OnError) -> SemanticDataset:
        found = self.read(split)
        if any(label is None for _, _, label in found.items):
            raise DataError(
                found.label_dir,
                f"split {split!r} has no annotations (folder not found)",
                NEEDS_LABELS,
            )
        return self._dataset(found, found.items, train, on_error, split)

    def build_predict(self) -> SemanticDataset:
        if self.predict_dir:
            items = list_folder(self.predict_dir)
            found, split = LayoutSplit(items, Path(self.predict_dir)), self.predict_dir
        else:
            found, split = self.read(self.predict_split), self.predict_split
            items = found.items
        items = self.keep_for_predict(items, lambda i: i[0])
        return self._dataset(found, items, False, "skip", split)


class GroundingDataModule(SegmentationDataModule):
    """Text-conditioned segmentation: VizWiz-VQA-Grounding, RefCOCO/+/g or gRefCOCO.

    Evaluation resizes each image to ``size`` x ``size`` and scores the prediction upsampled
    to the file's resolution (the LAVT / ReLA protocol).

    Args:
        format: ``vizwiz``, ``refcoco`` (refer's layout: RefCOCO, RefCOCO+, RefCOCOg) or
            ``grefcoco``.
        refcoco_dataset, split_by: refer files ``<dataset>/refs(<split_by>).p`` (``unc`` for
            RefCOCO/RefCOCO+, ``umd`` for RefCOCOg); gRefCOCO: ``grefs(<split_by>).json``.
        image_root: COCO train2014 image folder (default: refer's
            ``<data_root>/images/mscoco/images/train2014``; gRefCOCO ``images/train2014``).
        predict_json: JSON of (image, question) pairs to predict; default: the
            ``predict_split`` of ``data_root`` (with masks: the summary reports metrics).
        predict_split: split to predict when no ``predict_json`` is given.
        **kwargs: see :class:`SegmentationDataModule`; ``scale_range`` defaults to no
            rescale so crops never cut the referent out.
    """

    def __init__(
        self,
        data_root: str,
        format: Literal["vizwiz", "refcoco", "grefcoco"] = "vizwiz",
        refcoco_dataset: str = "refcoco",
        split_by: str = "unc",
        image_root: str | None = None,
        predict_json: str | None = None,
        predict_split: str = "test",
        scale_range: tuple[float, float] = (1.0, 1.0),
        **kwargs,
    ):
        super().__init__(data_root, scale_range=scale_range, **kwargs)
        self.save_hyperparameters()
        if format not in ("vizwiz", "refcoco", "grefcoco"):
            raise ValueError(f"format must be 'vizwiz', 'refcoco' or 'grefcoco', got {format!r}")
        self.format = format
        self.refcoco = dict(dataset=refcoco_dataset, split_by=split_by, image_root=image_root)
        self.predict_json = predict_json
        self.predict_split = predict_split

    def items(self, split: str, require_masks: bool | None = None):
        if self.format == "vizwiz":
            return read_vizwiz(self.data_root, split, require_masks)
        if self.format == "grefcoco":
            args = {k: self.refcoco[k] for k in ("split_by", "image_root")}
            return read_grefcoco(self.data_root, split, **args)
        return read_refcoco(self.data_root, split, **self.refcoco)

    def build(self, split: str, train: bool, on_error: OnError, **kwargs) -> GroundingDataset:
        items = self.items(split, require_masks=True)
        augment = self.augmentation(ignore_index=255) if train else None
        return GroundingDataset(items, self.crop_size[0], augment, on_error, **kwargs)

    def build_predict(self) -> GroundingDataset:
        if self.predict_json:
            items = read_pairs(self.predict_json)
        else:
            items = self.items(self.predict_split, require_masks=False)
        return GroundingDataset(
            self.keep_for_predict(items, lambda i: i.item_id), self.crop_size[0], None, "skip"
        )
