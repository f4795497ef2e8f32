"""LightningDataModule for 3-D detection on KITTI, OpenPCDet custom data or point-cloud folders."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from tessera.datamodules.common import OnError, collate_skipping, load_item
from tessera.datamodules.common.predict import PredictFilterMixin
from tessera.datamodules.detection3d import transforms as T
from tessera.datamodules.detection3d.gt_database import FOLDER, GTSampler, build_gt_database
from tessera.datamodules.detection3d.layouts import (
    FrameRef,
    custom_refs,
    detect_layout,
    folder_refs,
    kitti_refs,
    load_frame,
)


class FrameDataset(Dataset):
    """Frames of one split as dicts: ``item_id``, ``points (N, 4)``, ``gt_boxes (M, 7)``,
    ``gt_labels (M,)`` (indices into ``class_names``) and ``frame`` (the loaded
    :class:`~.layouts.Frame`, for evaluation and writing)."""

    def __init__(
        self,
        refs: Sequence[FrameRef],
        layout: str,
        class_names: Sequence[str],
        point_cloud_range: Sequence[float],
        augment: bool = False,
        fov_only: bool = True,
        intensity: str = "keep",
        on_error: OnError = "raise",
        seed: int = 0,
        gt_sampler: GTSampler | None = None,
    ):
        self.refs, self.layout = list(refs), layout
        self.gt_sampler = gt_sampler
        self.class_names = tuple(class_names)
        self.point_cloud_range = list(point_cloud_range)
        self.augment, self.fov_only, self.intensity = augment, fov_only, intensity
        self.on_error, self.seed, self.epoch = on_error, seed, 0

    def __len__(self) -> int:
        return len(self.refs)

    def set_epoch(self, epoch: int) -> None:
        """New augmentation draws each epoch (called by the module at every epoch start)."""
        self.epoch = epoch

    def _load(self, index: int) -> dict:
        ref = self.refs[index]
        names = self.class_names if self.layout == "kitti" else None
        frame = load_frame(ref, self.layout, names, self.fov_only, self.intensity)
        keep = [n in self.class_names for n in frame.gt_names]
        boxes = frame.gt_boxes[np.array(keep, dtype=bool)] if len(keep) else np.zeros((0, 7))
        names = [n for n, k in zip(frame.gt_names, keep, strict=True) if k]
        points = frame.points
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            if self.gt_sampler is not None:
                points, boxes, names = self.gt_sampler(points, boxes, names, rng)
            points, boxes = T.global_flip(points, boxes, rng)
            points, boxes = T.global_rotation(points, boxes, rng)
            points, boxes = T.global_scaling(points, boxes, rng)
        points, boxes, names = T.crop_to_range(points, boxes, names, self.point_cloud_range)
        return {
            "item_id": ref.item_id,
            "points": torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)),
            "gt_boxes": torch.from_numpy(boxes.astype(np.float32)),
            "gt_labels": torch.tensor([self.class_names.index(n) for n in names], dtype=torch.long),
            "frame": frame,
            "source": str(ref.points),
        }

    def __getitem__(self, index: int):
        ref = self.refs[index]
        return load_item(ref.item_id, ref.points, lambda: self._load(index), self.on_error)


def frame_collate(items: list[dict]) -> dict:
    """Variable-size clouds stay lists: ``{"items": [...]}``."""
    return {"items": list(items)}


class Detection3DDataModule(PredictFilterMixin, L.LightningDataModule):
    """Frames of KITTI (as released), OpenPCDet custom datasets, or point-cloud folders.

    Args:
        data: dataset root, or (prediction) a folder of ``.bin``/``.npy``/``.pcd`` files, or
            one such file.
        layout: ``auto`` (KITTI if ``training/``/``testing/`` exist, custom if ``points/``,
            else a folder), ``kitti``, ``custom`` or ``folder``.
        class_names: detected classes; must equal the model's (checked at setup).
        point_cloud_range: crop (x0, y0, z0, x1, y1, z1); must equal the model's.
        fov_only: KITTI: keep only points in the camera field of view (the usual setting).
        intensity: ``keep`` / ``auto`` / ``divide255`` / ``zero`` (see
            :func:`~.points.clean_points`); default ``keep`` for KITTI and custom data,
            ``auto`` for folders (0..255 intensities are divided by 255, and the summary says so).
        batch_size, num_workers: loaders (evaluation uses ``eval_batch_size``).
        train_split, val_split, test_split, predict_split: split names (``ImageSets/<split>.txt``);
            KITTI ``test`` is read from ``testing/``.
        augment: global flip / rotation / scaling while training.
        gt_sampling: ground-truth sampling while training (with ``augment``): per class the
            object count a frame is filled up to from the database of the training split
            (:mod:`~.gt_database`, built on first use), e.g. ``{Car: 15, Pedestrian: 15,
            Cyclist: 15}`` as OpenPCDet's KITTI configs; off by default.
        gt_min_points: database objects with fewer points are never pasted.
        on_error: ``raise`` or ``skip`` for unreadable frames while training; prediction
            always skips and reports.
        seed: augmentation seed.
    """

    def __init__(
        self,
        data: str,
        layout: str = "auto",
        class_names: Sequence[str] = ("Car", "Pedestrian", "Cyclist"),
        point_cloud_range: Sequence[float] = (0.0, -39.68, -3.0, 69.12, 39.68, 1.0),
        fov_only: bool = True,
        intensity: str | None = None,
        batch_size: int = 2,
        eval_batch_size: int = 1,
        num_workers: int = 0,
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "val",
        predict_split: str = "val",
        augment: bool = True,
        gt_sampling: dict[str, int] | None = None,
        gt_min_points: int = 5,
        on_error: OnError = "raise",
        seed: int = 0,
    ):
        super().__init__()
        self.data = data
        self.layout = detect_layout(data) if layout == "auto" else layout
        if self.layout not in ("kitti", "custom", "folder"):
            raise ValueError(f"layout must be auto, kitti, custom or folder, got {layout!r}")
        self.class_names = list(class_names)
        self.point_cloud_range = [float(v) for v in point_cloud_range]
        self.fov_only = fov_only
        # dataset files are read as they are; loose files from other sensors are normalised
        self.intensity = intensity or ("auto" if self.layout == "folder" else "keep")
        self.batch_size, self.eval_batch_size, self.num_workers = (
            batch_size,
            eval_batch_size,
            num_workers,
        )
        self.splits = {
            "train": train_split,
            "val": val_split,
            "test": test_split,
            "predict": predict_split,
        }
        self.augment, self.on_error, self.seed = augment, on_error, seed
        self.gt_sampling, self.gt_min_points = gt_sampling, gt_min_points

    def prepare_data(self) -> None:
        """Builds the ground-truth database once (one process per node) when it is needed."""
        if self.trainer is not None and self.trainer.state.fn != "fit":
            return
        index = Path(self.data) / FOLDER / f"dbinfos_{self.splits['train']}.json"
        if self.gt_sampling and self.augment and not index.is_file():
            build_gt_database(
                self.data, self.class_names, self.splits["train"], self.layout, self.fov_only
            )

    def refs(self, split: str) -> list[FrameRef]:
        if self.layout == "kitti":
            return kitti_refs(self.data, split)
        if self.layout == "custom":
            return custom_refs(self.data, split)
        return folder_refs(self.data)

    def dataset(
        self,
        split: str,
        augment: bool = False,
        on_error: OnError = "raise",
        refs: list[FrameRef] | None = None,
    ) -> FrameDataset:
        return FrameDataset(
            self.refs(split) if refs is None else refs,
            self.layout,
            self.class_names,
            self.point_cloud_range,
            augment,
            self.fov_only,
            self.intensity,
            on_error,
            self.seed,
        )

    def _loader(self, dataset: FrameDataset, batch_size: int, shuffle: bool = False) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=collate_skipping(frame_collate),
        )

    def train_dataloader(self) -> DataLoader:
        if self.layout == "folder":
            raise ValueError(f"{self.data}: a folder of point clouds has no labels to train on")
        ds = self.dataset(self.splits["train"], self.augment, self.on_error)
        if self.gt_sampling and self.augment:
            unknown = sorted(set(self.gt_sampling) - set(self.class_names))
            if unknown:
                raise ValueError(
                    f"data.gt_sampling names {unknown}, which are not in class_names "
                    f"{self.class_names}; give counts for your classes or set it to null"
                )
            self.prepare_data()  # when used outside a Trainer
            ds.gt_sampler = GTSampler(
                self.data, self.gt_sampling, self.gt_min_points, self.splits["train"]
            )
        if self.trainer is not None:
            ds.epoch = self.trainer.current_epoch
        return self._loader(ds, self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(
            self.dataset(self.splits["val"], on_error=self.on_error), self.eval_batch_size
        )

    def test_dataloader(self) -> DataLoader:
        return self._loader(
            self.dataset(self.splits["test"], on_error=self.on_error), self.eval_batch_size
        )

    def predict_dataloader(self) -> DataLoader:
        refs = self.keep_for_predict(self.refs(self.splits["predict"]), lambda r: r.item_id)
        return self._loader(
            self.dataset(self.splits["predict"], on_error="skip", refs=refs), self.eval_batch_size
        )
