"""LightningModule: CenterPoint losses, KITTI / LiDAR-frame AP on validation and test,
detections for the prediction writer."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
import torch

from tessera.apps.detection3d.metrics import kitti_evaluate, lidar_evaluate
from tessera.apps.detection3d.model import PillarDetector
from tessera.apps.detection3d.results import to_kitti
from tessera.datamodules.common import is_empty_batch


def frame_metrics(
    frames: list, detections: list[dict], class_names: Sequence[str]
) -> dict[str, float]:
    """KITTI AP (official rules) when every frame has KITTI labels and calib, else LiDAR-frame
    AP without camera rules (custom datasets)."""
    if frames and all(f.labels is not None and f.calib is not None for f in frames):
        dts = [
            to_kitti(d["boxes"], d["scores"], d["labels"], class_names, f.calib, f.image_shape)
            for f, d in zip(frames, detections, strict=True)
        ]
        return kitti_evaluate([f.labels for f in frames], dts, classes=[c for c in class_names])
    gts = [(f.gt_boxes, f.gt_names) for f in frames]
    dts = [
        (d["boxes"], [class_names[int(c)] for c in d["labels"]], d["scores"]) for d in detections
    ]
    return lidar_evaluate(gts, dts, class_names)


class Detection3DModule(L.LightningModule):
    """Pillar detector with a DSVT / FlatFormer / ScatterFormer backbone and a CenterPoint head.

    Args:
        class_names: detected classes (KITTI: Car, Pedestrian, Cyclist).
        point_cloud_range: (x0, y0, z0, x1, y1, z1) metres.
        voxel_size: pillar size (vx, vy, vz = range height).
        backbone: ``{"type": ..., **overrides}`` (see :data:`~.model.BACKBONES`).
        bev: BEV ResNet options; head: CenterHead options; pfn_layers: pillar-net depth.
        lr, weight_decay: AdamW with OneCycle (as OpenPCDet's ``adam_onecycle``).
        weights: initial weights (registry name or file) to fine-tune from.
        predict_out: folder ``predict`` writes to; overwrite: redo finished frames.
    """

    def __init__(
        self,
        class_names: Sequence[str] = ("Car", "Pedestrian", "Cyclist"),
        point_cloud_range: Sequence[float] = (0.0, -39.68, -3.0, 69.12, 39.68, 1.0),
        voxel_size: Sequence[float] = (0.32, 0.32, 4.0),
        backbone: dict[str, Any] | None = None,
        bev: dict[str, Any] | None = None,
        head: dict[str, Any] | None = None,
        pfn_layers: int = 2,
        lr: float = 3e-3,
        weight_decay: float = 0.01,
        weights: str | None = None,
        predict_out: str = "detections",
        overwrite: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters()
        bev = bev or dict(
            layer_nums=[1, 1],
            layer_strides=[1, 2],
            num_filters=[32, 64],
            upsample_strides=[0.5, 1],
            upsample_filters=[32, 32],
        )
        self.model = PillarDetector(
            class_names,
            point_cloud_range,
            voxel_size,
            backbone or {"type": "dsvt_tiny"},
            bev,
            head,
            pfn_layers,
        )
        self.class_names = list(class_names)
        self._eval: list[tuple[Any, dict]] = []
        if weights:
            from tessera.apps.common.weights import read_weights

            self.load_state_dict(read_weights(weights, "detection3d").state_dict)

    def setup(self, stage: str) -> None:
        data = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if data is None:
            return
        if list(data.class_names) != self.class_names:
            raise ValueError(
                f"data.class_names {list(data.class_names)} differ from model.class_names "
                f"{self.class_names}; set both to the same list"
            )
        if [float(v) for v in data.point_cloud_range] != [
            float(v) for v in self.hparams.point_cloud_range
        ]:
            raise ValueError(
                f"data.point_cloud_range {data.point_cloud_range} differs from "
                f"model.point_cloud_range {list(self.hparams.point_cloud_range)}"
            )

    def forward(self, points: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.model([p.to(self.device) for p in points])

    def detect(self, points: Sequence[torch.Tensor]) -> list[dict[str, np.ndarray]]:
        """Per cloud ``boxes (D, 7)``, ``scores``, ``labels``; an empty cloud has no detections
        (the head's biases alone would otherwise fire everywhere)."""
        dets = self.model.head.decode(self(points))
        for i, p in enumerate(points):
            if len(p) == 0:
                dets[i] = {k: v[:0] for k, v in dets[i].items()}
        return dets

    def training_step(self, batch: dict, _: int):
        if is_empty_batch(batch):
            return None
        items = batch["items"]
        out = self([i["points"] for i in items])
        losses = self.model.head.loss(
            out, [i["gt_boxes"] for i in items], [i["gt_labels"] for i in items]
        )
        for key, value in losses.items():
            self.log(f"train/{key}", value, prog_bar=key == "loss", batch_size=len(items))
        return losses["loss"]

    def on_train_epoch_start(self) -> None:
        # Lightning builds the train loader once: without this every epoch would repeat the
        # first epoch's augmentation draws
        dataset = getattr(self.trainer.train_dataloader, "dataset", None)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(self.current_epoch)

    def _eval_step(self, batch: dict) -> None:
        if is_empty_batch(batch):
            return
        items = batch["items"]
        for item, det in zip(items, self.detect([i["points"] for i in items]), strict=True):
            self._eval.append((item["frame"], det))

    def validation_step(self, batch: dict, _: int) -> None:
        self._eval_step(batch)

    def test_step(self, batch: dict, _: int) -> None:
        self._eval_step(batch)

    def _eval_end(self, stage: str) -> None:
        frames = [f for f, _ in self._eval]
        dets = [d for _, d in self._eval]
        self._eval = []
        if not frames:
            return
        for key, value in frame_metrics(frames, dets, self.class_names).items():
            self.log(f"{stage}/{key}", value, prog_bar=key in ("car_bev_ap_moderate", "car_bev_ap"))

    def on_validation_epoch_end(self) -> None:
        self._eval_end("val")

    def on_test_epoch_end(self) -> None:
        self._eval_end("test")

    def predict_step(self, batch: dict, _: int) -> list[dict]:
        items = batch.get("items", [])
        if not items:
            return []
        dets = self.detect([i["points"] for i in items])
        return [
            {"item_id": i["item_id"], "frame": i["frame"], "source": i["source"], **d}
            for i, d in zip(items, dets, strict=True)
        ]

    def configure_callbacks(self):
        if self._trainer is not None and self.trainer.state.fn == "predict":
            from tessera.apps.detection3d.writer import DetectionWriter

            return [
                DetectionWriter(self.hparams.predict_out, self.class_names, self.hparams.overwrite)
            ]
        return []

    def configure_optimizers(self):
        opt = torch.optim.AdamW(
            self.parameters(),
            lr=self.hparams.lr,
            weight_decay=self.hparams.weight_decay,
            betas=(0.95, 0.99),
        )
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total) or total < 2:
            return opt
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=self.hparams.lr, total_steps=int(total) + 1, pct_start=0.4, div_factor=10
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
