"""LightningDataModules: COCO top-down keypoints and Human3.6M-style lifting.

Both are picked by class in the config (``data.class_path``), see ``apps/pose/configs``.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from tessera.datamodules.common import DataError, OnError, collate_skipping
from tessera.datamodules.common.predict import PredictFilterMixin
from tessera.datamodules.pose import calibration, coco, h36m
from tessera.datamodules.pose.codecs import build_codec
from tessera.datamodules.pose.datasets import LiftingDataset, TopDownDataset
from tessera.datamodules.pose.scan import OnSizeMismatch, check_images
from tessera.datamodules.pose.topdown import Augmentation


class PoseDataModule(PredictFilterMixin, L.LightningDataModule):
    """Common loader settings.

    Args:
        batch_size: training batch.
        eval_batch_size: validation/test/predict batch.
        num_workers: loader workers.
        on_error: ``raise`` or ``skip`` unreadable items (prediction always skips and lists
            them in the summary).
    """

    def __init__(
        self,
        batch_size: int = 32,
        eval_batch_size: int = 32,
        num_workers: int = 0,
        on_error: OnError = "raise",
    ):
        super().__init__()
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers, self.on_error = num_workers, on_error
        self.datasets: dict[str, object] = {}

    def _loader(self, stage: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.datasets[stage],
            batch_size=self.batch_size if shuffle else self.eval_batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=collate_skipping(),
            drop_last=shuffle and len(self.datasets[stage]) > self.batch_size,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self):
        return self._loader("train", True)

    def val_dataloader(self):
        return self._loader("val", False)

    def test_dataloader(self):
        return self._loader("test", False)

    def predict_dataloader(self):
        return self._loader("predict", False)


class CocoKeypointDataModule(PoseDataModule):
    """COCO person keypoints, top-down (``annotations/person_keypoints_{split}2017.json`` and
    ``{split}2017/``), as mmpose's ``CocoDataset`` with the usual 256×192 pipeline.

    Args:
        data_root: the COCO folder (holding ``annotations/`` and ``{split}2017/``).
        train_split, val_split, test_split: split names (COCO evaluates on ``val``).
        input_size: crop ``[W, H]`` (192×256 in the paper configs).
        heatmap_size: ``[W, H]`` (input / 4).
        codec: ``msra`` or ``udp``; ``unbiased`` turns MSRA into DARK.
        sigma: Gaussian σ in heatmap pixels.
        use_udp: unbiased affine crops (with the ``udp`` codec).
        padding: box padding.
        detections: person boxes for val/test/predict in the COCO results format
            (``COCO_val2017_detections_AP_H_56_person.json``, relative to ``data_root`` or
            absolute); None = ground-truth boxes.
        det_score_threshold: drop detections below this box score.
        augment: mmpose's flip / half-body / shift-scale-rotate augmentation for training.
        predict_split: split whose images ``predict`` runs on (boxes from ``detections``,
            else the ground truth).
        predict_images: instead, a folder of images: boxes from ``detections`` (``image_id``
            = integer file stem, COCO's naming) or, with none, the whole image.
        on_error: ``raise`` or ``skip`` missing and unreadable images; with ``skip`` the
            scan drops them up front with a warning (and the loader skips any that fail later).
        scan: before using a split, check every image it references (training: those with
            a used person; evaluation: every image of the json) exists with the json's
            width/height, from the headers, cached (see
            :func:`~tessera.datamodules.pose.scan.check_images`).
        on_size_mismatch: ``raise``, ``skip`` or ``accept`` images whose size differs from
            the json's.
    """

    def __init__(
        self,
        data_root: str,
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "val",
        input_size: tuple[int, int] = (192, 256),
        heatmap_size: tuple[int, int] = (48, 64),
        codec: str = "msra",
        sigma: float = 2.0,
        unbiased: bool = False,
        use_udp: bool = False,
        padding: float = 1.25,
        detections: str | None = None,
        det_score_threshold: float = 0.0,
        augment: bool = True,
        rotate_factor: float = 40.0,
        scale_range: tuple[float, float] = (0.75, 1.25),
        predict_split: str | None = None,
        predict_images: str | None = None,
        batch_size: int = 32,
        eval_batch_size: int = 32,
        num_workers: int = 0,
        on_error: OnError = "raise",
        scan: bool = True,
        on_size_mismatch: OnSizeMismatch = "raise",
        seed: int = 0,
    ):
        super().__init__(batch_size, eval_batch_size, num_workers, on_error)
        self.save_hyperparameters()
        self.root = Path(data_root)
        self.dropped_images: dict[str, set[int]] = {}
        kwargs = {"unbiased": unbiased} if codec == "msra" else {}
        self.codec = build_codec(codec, input_size, heatmap_size, sigma, **kwargs)
        self.report: Counter = Counter()
        self.box_source: dict[str, str] = {}

    def annotation_file(self, split: str) -> Path:
        return self.root / "annotations" / f"person_keypoints_{split}2017.json"

    def image_dir(self, split: str) -> Path:
        return self.root / f"{split}2017"

    def _detections_path(self) -> Path:
        p = Path(self.hparams.detections)
        return p if p.is_absolute() else self.root / p

    def instances(self, split: str, train: bool) -> list[coco.PersonInstance]:
        ann_file = self.annotation_file(split)
        ann = coco.read_annotations(ann_file)
        images = self.image_dir(split)
        if not images.is_dir():
            raise DataError(
                images,
                "image folder not found",
                f"COCO images of split {split!r} go in {split}2017/ "
                f"(http://images.cocodataset.org/zips/{split}2017.zip)",
            )
        if not ann.images:
            raise DataError(
                ann_file,
                f"split {split!r} lists no images",
                f"use person_keypoints_{split}2017.json from annotations_trainval2017.zip",
            )
        if train or not self.hparams.detections:
            self.box_source[split] = "ground truth"
            found = coco.gt_instances(ann, images, train)
            fix = "the split needs person annotations with at least one labelled keypoint"
        else:
            self.box_source[split] = f"detections {self._detections_path().name}"
            found = coco.detection_instances(
                ann.images,
                self._detections_path(),
                images,
                self.hparams.det_score_threshold,
                ann.report,
            )
            fix = "check the detections file and det_score_threshold"
        self.report.update(ann.report)
        if not found:
            left_out = f" (left out: {dict(ann.report)})" if ann.report else ""
            raise DataError(ann_file, f"split {split!r} has no usable person{left_out}", fix)
        if self.hparams.scan:
            # Training reads only the images of its persons; COCOeval scores every image.
            used = {i.image_id for i in found} if train else set(ann.images)
            dropped = check_images(
                ann_file,
                {i: ann.images[i] for i in sorted(used)},
                images,
                split,
                self.on_error,
                self.hparams.on_size_mismatch,
            )
            self.dropped_images[split] = dropped
            if dropped:
                self.report["person boxes in dropped images"] += sum(
                    i.image_id in dropped for i in found
                )
                found = [i for i in found if i.image_id not in dropped]
                if not train:
                    warnings.warn(
                        f"COCO AP of split {split!r} is computed over the whole "
                        f"{ann_file.name}: persons of the {len(dropped)} dropped images "
                        "count as missed",
                        UserWarning,
                        stacklevel=2,
                    )
                if not found:
                    raise DataError(
                        ann_file,
                        f"split {split!r} has no usable person left after dropping "
                        f"{len(dropped)} images",
                        "fix or download the images",
                    )
        return found

    def _dataset(self, instances, train: bool, on_error: OnError) -> TopDownDataset:
        hp = self.hparams
        aug = None
        if train and hp.augment:
            aug = Augmentation(rotate_factor=hp.rotate_factor, scale_range=tuple(hp.scale_range))
        return TopDownDataset(
            instances, hp.input_size, self.codec, hp.use_udp, hp.padding, aug, on_error, hp.seed
        )

    def predict_instances(self) -> list[coco.PersonInstance]:
        hp = self.hparams
        if hp.predict_images:
            folder = Path(hp.predict_images)
            if not folder.is_dir():
                raise DataError(folder, "image folder not found")
            if not hp.detections:
                self.box_source["predict"] = "whole image (no detections given)"
                return coco.whole_image_instances(folder)
            images = {}
            for inst in coco.whole_image_instances(folder):
                if inst.image_path.stem.isdigit():
                    w, h = inst.image_size
                    images[int(inst.image_path.stem)] = {
                        "id": int(inst.image_path.stem),
                        "file_name": inst.image_path.name,
                        "width": w,
                        "height": h,
                    }
            self.box_source["predict"] = f"detections {self._detections_path().name}"
            return coco.detection_instances(
                images, self._detections_path(), folder, hp.det_score_threshold, self.report
            )
        split = hp.predict_split or hp.test_split
        found = self.instances(split, train=False)
        self.box_source["predict"] = self.box_source[split]
        return found

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        if stage in (None, "fit"):
            self.datasets["train"] = self._dataset(
                self.instances(hp.train_split, True), True, self.on_error
            )
        if stage in (None, "fit", "validate"):
            self.datasets["val"] = self._dataset(
                self.instances(hp.val_split, False), False, self.on_error
            )
        if stage in (None, "test"):
            self.datasets["test"] = self._dataset(
                self.instances(hp.test_split, False), False, self.on_error
            )
        if stage == "predict":
            self._predict_items = self.predict_instances()

    def predict_dataloader(self):
        # The prediction writer installs its filter after setup: apply it here.
        found = self.keep_for_predict(self._predict_items, lambda i: i.item_id)
        self.datasets["predict"] = self._dataset(found, False, "skip")
        return self._loader("predict", False)

    def split_of(self, stage: str) -> str:
        hp = self.hparams
        return {"val": hp.val_split, "test": hp.test_split}.get(stage, hp.predict_split or "val")


class H36MDataModule(PoseDataModule):
    """Human3.6M 2-D→3-D lifting from VideoPose3D's npz files.

    Args:
        data_root: folder with ``data_3d_h36m.npz``, ``data_2d_h36m_<keypoints>.npz`` and
            optionally ``cameras.json`` (else recovered once from the ground-truth 2-D file
            and cached there, see :mod:`.calibration`).
        keypoints: 2-D source (``gt``, ``cpn_ft_h36m_dbb``, ...).
        dataset: file stem (``h36m``: ``data_3d_h36m.npz``).
        calibration_keypoints: 2-D file the cameras are recovered from when there is no
            ``cameras.json`` (``gt``: exact projections; detections are refused).
        resolution: image ``[w, h]`` of recovered cameras, one for all or one per camera
            index (sets the input normalisation); None = 1000×1000.
        max_reprojection_px: largest reprojection RMS (pixels) a recovered camera may have.
        train_subjects, val_subjects, test_subjects: VideoPose3D's protocol (S1 S5 S6 S7 S8 /
            S9 S11; validation on the test subjects, as VideoPose3D does).
        frames: receptive field T (odd), must match the model's.
        train_stride: use every n-th centre frame for training.
        flip_prob: training flip augmentation.
        predict_subjects: subjects ``predict`` lifts (default the test subjects).
    """

    def __init__(
        self,
        data_root: str,
        keypoints: str = "gt",
        dataset: str = "h36m",
        train_subjects: tuple[str, ...] = h36m.TRAIN_SUBJECTS,
        val_subjects: tuple[str, ...] = h36m.TEST_SUBJECTS,
        test_subjects: tuple[str, ...] = h36m.TEST_SUBJECTS,
        frames: int = 27,
        train_stride: int = 1,
        flip_prob: float = 0.5,
        predict_subjects: tuple[str, ...] | None = None,
        calibration_keypoints: str = "gt",
        resolution: list[list[int]] | list[int] | None = None,
        max_reprojection_px: float = calibration.MAX_REPROJECTION_PX,
        batch_size: int = 256,
        eval_batch_size: int = 512,
        num_workers: int = 0,
        on_error: OnError = "raise",
        seed: int = 0,
    ):
        super().__init__(batch_size, eval_batch_size, num_workers, on_error)
        self.save_hyperparameters()
        self.root = Path(data_root)
        self._data = None

    @property
    def path_3d(self) -> Path:
        return self.root / f"data_3d_{self.hparams.dataset}.npz"

    @property
    def path_2d(self) -> Path:
        return self.root / f"data_2d_{self.hparams.dataset}_{self.hparams.keypoints}.npz"

    def cameras_file(self) -> Path:
        """``cameras.json``: the user's, or recovered from the ground-truth 2-D and cached."""
        hp = self.hparams
        return calibration.cameras_file(
            self.root,
            self.path_3d,
            self.root / f"data_2d_{hp.dataset}_{hp.calibration_keypoints}.npz",
            hp.resolution,
            hp.max_reprojection_px,
        )

    def prepare_data(self) -> None:
        self.cameras_file()  # once per node: recovers and caches a missing calibration

    def load(self):
        if self._data is None:
            positions_3d = h36m.read_positions_3d(self.path_3d)
            positions_2d, meta = h36m.read_positions_2d(self.path_2d)
            cameras = h36m.read_cameras(self.cameras_file())
            self._data = (positions_3d, positions_2d, meta, cameras)
        return self._data

    def sequences(self, subjects) -> list[h36m.Sequence]:
        positions_3d, positions_2d, _, cameras = self.load()
        found = h36m.build_sequences(positions_3d, positions_2d, cameras, subjects, self.path_2d)
        if not found:
            raise DataError(self.path_3d, f"no sequences for subjects {list(subjects)}")
        return found

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        if stage in (None, "fit"):
            self.datasets["train"] = LiftingDataset(
                self.sequences(hp.train_subjects),
                hp.frames,
                hp.train_stride,
                hp.flip_prob,
                hp.seed,
            )
        if stage in (None, "fit", "validate"):
            self.datasets["val"] = LiftingDataset(self.sequences(hp.val_subjects), hp.frames)
        if stage in (None, "test"):
            self.datasets["test"] = LiftingDataset(self.sequences(hp.test_subjects), hp.frames)
        if stage == "predict":
            self._predict_items = self.sequences(hp.predict_subjects or hp.test_subjects)

    def predict_dataloader(self):
        keep = self.keep_for_predict(self._predict_items, sequence_id)
        self.datasets["predict"] = SequenceList(keep)
        return DataLoader(self.datasets["predict"], batch_size=1, collate_fn=_first)


def sequence_id(seq: h36m.Sequence) -> str:
    """Output name of a lifted clip: ``S9/Walking 1/cam0``."""
    return f"{seq.subject}/{seq.action}/cam{seq.camera}"


class SequenceList(list):
    """Whole clips for prediction (lifted with sliding windows by the module)."""


def _first(items):
    seq = items[0]
    return {"sequence": seq, "item_id": sequence_id(seq), "skipped": []}


def stack_windows(poses_2d: np.ndarray, frames: int) -> np.ndarray:
    """``(N, J, 2)`` → ``(N, frames, J, 2)`` windows centred on each frame, edge-padded."""
    pad = frames // 2
    idx = np.clip(
        np.arange(len(poses_2d))[:, None] + np.arange(-pad, pad + 1), 0, len(poses_2d) - 1
    )
    return poses_2d[idx]
