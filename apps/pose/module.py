"""LightningModules: top-down PSA keypoints (COCO) and 2-D→3-D lifting (Human3.6M).

Both log ``val/<key>`` / ``test/<key>`` with the registry keys (``oks_ap``, ``oks_ap50``,
``pck_0.05``; ``mpjpe_mm``, ``p_mpjpe_mm``) and return one dict per item from
``predict_step`` for :mod:`tessera.apps.pose.writer`.
"""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from tessera.apps.pose import metrics
from tessera.apps.pose.decoding import decode_batch, predict_heatmaps
from tessera.apps.pose.model import PoseLifter, PSAPoseNet
from tessera.datamodules.common import is_empty_batch
from tessera.datamodules.pose.codecs import build_codec
from tessera.datamodules.pose.datamodule import stack_windows
from tessera.datamodules.pose.datasets import flip_2d, flip_3d

LR_SCHEDULES = ("cosine", "step", "exponential")


class PoseTask(L.LightningModule):
    """AdamW with a linear warm-up, then ``lr_schedule``:

    - ``cosine``: decay to zero over the run (the tiny configs);
    - ``step``: × ``lr_gamma`` at each epoch of ``lr_milestones`` (mmpose's COCO recipes:
      epochs 170 and 200 of 210, γ 0.1);
    - ``exponential``: × ``lr_gamma`` per epoch (VideoPose3D 0.95, MixSTE 0.99).

    Args:
        lr: peak learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps.
        lr_schedule, lr_milestones, lr_gamma: see above (epoch-based schedules need
            ``trainer.max_epochs``).
        weights: initial weights (registry name or file) for fine-tuning.
        predict_out: folder ``predict`` writes to.
        overwrite: predict items whose outputs exist again.
    """

    def __init__(
        self,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        warmup_steps: int = 100,
        weights: str | None = None,
        predict_out: str = "pose-predictions",
        overwrite: bool = False,
        lr_schedule: str = "cosine",
        lr_milestones: tuple[int, ...] = (170, 200),
        lr_gamma: float = 0.1,
    ):
        super().__init__()
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
        self._outputs: list = []

    def _load_initial(self) -> None:
        if self.hparams.weights:
            from tessera.apps.common.weights import read_weights

            state = read_weights(self.hparams.weights, "pose").state_dict
            self.load_state_dict(state, strict=True)

    def configure_optimizers(self):
        hp = self.hparams
        opt = torch.optim.AdamW(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = min(hp.warmup_steps, total // 2)
        schedule = hp.get("lr_schedule", "cosine")
        epochs = self.trainer.max_epochs
        if schedule != "cosine" and (epochs is None or epochs < 1):
            raise ValueError(
                f"lr_schedule {schedule!r} counts epochs: set trainer.max_epochs "
                "(or use lr_schedule cosine with max_steps)"
            )
        per_epoch = total / epochs if schedule != "cosine" else 1

        def factor(step: int) -> float:
            warm = min(1.0, (step + 1) / max(1, warmup))
            if schedule == "step":
                epoch = step // per_epoch
                return warm * hp.lr_gamma ** sum(epoch >= m for m in hp.lr_milestones)
            if schedule == "exponential":
                return warm * hp.lr_gamma ** (step // per_epoch)
            if step < warmup:
                return warm
            return 0.5 * (
                1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup)))
            )

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_validation_epoch_start(self):
        self._outputs = []

    on_test_epoch_start = on_validation_epoch_start

    def _gathered(self) -> list:
        if self.trainer.world_size > 1:
            import torch.distributed as dist

            parts = [None] * self.trainer.world_size
            dist.all_gather_object(parts, self._outputs)
            return [o for p in parts for o in p]
        return self._outputs

    def configure_callbacks(self):
        if self.trainer is not None and self.trainer.state.fn == "predict":
            from tessera.apps.pose.writer import writer_for

            return [writer_for(self)]
        return []


class TopDownPose(PoseTask):
    """PSA heatmap keypoints, trained with the weighted heatmap MSE (mmpose
    ``KeypointMSELoss(use_target_weight=True)``); evaluated as mmpose's ``CocoMetric``.

    Args:
        backbone, pretrained, psa_mode, psa_placement, deconv_channels, feature_index: see
            :class:`~.model.PSAPoseNet`.
        input_size, heatmap_size, codec, sigma, unbiased, use_udp: must equal the data's
            (checked at setup).
        flip_test: average with the mirrored crop's heatmaps (shifted one pixel unless UDP).
        nms_threshold: OKS-NMS threshold (0.9; None = off).
        keypoint_score_thr: keypoints above it enter the rescoring mean (0.2).
        overlays: ``predict`` also draws each input image's skeletons into
            ``<overlays>/<image stem>.png`` (``tessera pose predict --overlays DIR``).
    """

    def __init__(
        self,
        backbone: str = "resnet50",
        pretrained: bool = False,
        psa_mode: str = "parallel",
        psa_placement: str = "head",
        deconv_channels: tuple[int, ...] = (256, 256, 256),
        feature_index: int = -1,
        input_size: tuple[int, int] = (192, 256),
        heatmap_size: tuple[int, int] = (48, 64),
        codec: str = "msra",
        sigma: float = 2.0,
        unbiased: bool = False,
        use_udp: bool = False,
        flip_test: bool = True,
        nms_threshold: float | None = 0.9,
        keypoint_score_thr: float = 0.2,
        lr: float = 5e-4,
        weight_decay: float = 1e-4,
        warmup_steps: int = 500,
        weights: str | None = None,
        predict_out: str = "pose-predictions",
        overwrite: bool = False,
        overlays: str | None = None,
        lr_schedule: str = "cosine",
        lr_milestones: tuple[int, ...] = (170, 200),
        lr_gamma: float = 0.1,
    ):
        super().__init__(
            lr, weight_decay, warmup_steps, weights, predict_out, overwrite,
            lr_schedule, lr_milestones, lr_gamma,
        )  # fmt: skip
        self.save_hyperparameters()
        self.net = PSAPoseNet(
            backbone, pretrained, 17, psa_mode, psa_placement, tuple(deconv_channels), feature_index
        )
        kwargs = {"unbiased": unbiased} if codec == "msra" else {}
        self.codec = build_codec(codec, input_size, heatmap_size, sigma, **kwargs)
        self._load_initial()

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer else None
        if dm is None or not hasattr(dm, "codec"):
            return
        for key in ("input_size", "heatmap_size", "codec", "sigma", "unbiased", "use_udp"):
            ours, theirs = self.hparams[key], dm.hparams[key]
            if (list(ours) if isinstance(ours, (list, tuple)) else ours) != (
                list(theirs) if isinstance(theirs, (list, tuple)) else theirs
            ):
                raise ValueError(
                    f"model.{key}={ours!r} but data.{key}={theirs!r}; set both to the same value"
                )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)

    def training_step(self, batch, _):
        if is_empty_batch(batch):
            return None
        pred = self(batch["image"])
        w = batch["keypoint_weights"][..., None, None]
        loss = F.mse_loss(pred * w, batch["heatmaps"] * w)
        self.log("train_loss", loss, prog_bar=True, batch_size=len(pred))
        return loss

    def keypoints(self, batch) -> tuple[np.ndarray, np.ndarray]:
        hp = self.hparams
        heatmaps = predict_heatmaps(self.net, batch["image"], hp.flip_test, not hp.use_udp)
        return decode_batch(
            heatmaps,
            self.codec,
            batch["center"].cpu().numpy(),
            batch["scale"].cpu().numpy(),
            hp.input_size,
            hp.use_udp,
        )

    def _eval_step(self, batch) -> None:
        if is_empty_batch(batch):
            return
        kpts, scores = self.keypoints(batch)
        for b in range(len(kpts)):
            self._outputs.append(
                {
                    "item_id": batch["item_id"][b],
                    "image_id": int(batch["image_id"][b]),
                    "keypoints": kpts[b],
                    "keypoint_scores": scores[b],
                    "bbox_score": float(batch["bbox_score"][b]),
                    "area": float(np.prod(batch["scale"][b].cpu().numpy())),
                    "gt": batch["gt_keypoints"][b].cpu().numpy(),
                    "bbox": batch["bbox"][b].cpu().numpy(),
                }
            )

    def validation_step(self, batch, _):
        self._eval_step(batch)

    def test_step(self, batch, _):
        self._eval_step(batch)

    def _epoch_end(self, stage: str) -> None:
        dm = self.trainer.datamodule
        values = evaluate_keypoints(
            self._gathered(),
            dm.annotation_file(dm.split_of(stage)),
            self.hparams.nms_threshold,
            self.hparams.keypoint_score_thr,
        )
        for key, value in values.items():
            self.log(f"{stage}/{key}", value, prog_bar=key == "oks_ap", sync_dist=False)

    def on_validation_epoch_end(self):
        self._epoch_end("val")

    def on_test_epoch_end(self):
        self._epoch_end("test")

    def predict_step(self, batch, _) -> list[dict]:
        if is_empty_batch(batch):
            return []
        kpts, scores = self.keypoints(batch)
        return [
            {
                "item_id": batch["item_id"][b],
                "image_id": int(batch["image_id"][b]),
                "keypoints": kpts[b].tolist(),
                "keypoint_scores": scores[b].tolist(),
                "bbox_score": float(batch["bbox_score"][b]),
                "bbox": batch["bbox"][b].tolist(),
                "area": float(np.prod(batch["scale"][b].cpu().numpy())),
            }
            for b in range(len(kpts))
        ]


def evaluate_keypoints(
    outputs: list[dict], annotation_file, nms_threshold=0.9, keypoint_score_thr=0.2
) -> dict[str, float]:
    """COCO AP/AR of top-down predictions (mmpose protocol) plus PCK@0.05/0.2 and EPE on
    the instances that carry ground truth (ground-truth boxes)."""
    results = metrics.coco_results(outputs, nms_threshold, keypoint_score_thr)
    values = metrics.coco_keypoint_ap(annotation_file, results)
    with_gt = [o for o in outputs if (o["gt"][:, 2] > 0).any()]
    if with_gt:
        pred = np.stack([o["keypoints"] for o in with_gt])
        gt = np.stack([o["gt"][:, :2] for o in with_gt])
        mask = np.stack([o["gt"][:, 2] > 0 for o in with_gt])
        norm = np.array([max(o["bbox"][2], o["bbox"][3]) for o in with_gt])
        values["pck_0.05"] = metrics.pck_accuracy(pred, gt, mask, norm, 0.05)
        values["pck_0.2"] = metrics.pck_accuracy(pred, gt, mask, norm, 0.2)
        values["epe"] = metrics.epe(pred, gt, mask)
    return values


class PoseLifting(PoseTask):
    """2-D→3-D lifting trained with MPJPE (VideoPose3D's loss), evaluated with protocols
    #1/#2 over all actions.

    Args:
        frames, dim, depth, heads, mlp_ratio, dropout, max_hop, deformable, points: see
            :class:`~.model.PoseLifter` (``frames`` must equal the data's, checked).
        flip_test: average with the mirrored input's prediction (VideoPose3D's test-time
            augmentation).
        predict_chunk: windows per forward pass when lifting whole clips.
    """

    def __init__(
        self,
        frames: int = 27,
        dim: int = 64,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        dropout: float = 0.0,
        max_hop: int | None = 2,
        deformable: bool = False,
        points: int = 4,
        flip_test: bool = True,
        predict_chunk: int = 256,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        warmup_steps: int = 100,
        weights: str | None = None,
        predict_out: str = "pose-predictions",
        overwrite: bool = False,
        lr_schedule: str = "cosine",
        lr_milestones: tuple[int, ...] = (170, 200),
        lr_gamma: float = 0.1,
    ):
        super().__init__(
            lr, weight_decay, warmup_steps, weights, predict_out, overwrite,
            lr_schedule, lr_milestones, lr_gamma,
        )  # fmt: skip
        self.save_hyperparameters()
        self.net = PoseLifter(
            frames, 17, dim, depth, heads, mlp_ratio, dropout, max_hop, deformable, points
        )
        self._load_initial()

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer else None
        frames = getattr(dm, "hparams", {}).get("frames") if dm is not None else None
        if frames is not None and frames != self.hparams.frames:
            raise ValueError(
                f"model.frames={self.hparams.frames} but data.frames={frames}; "
                "the receptive field must be the same"
            )

    def forward(self, poses_2d: torch.Tensor) -> torch.Tensor:
        return self.net(poses_2d)

    def lift(self, poses_2d: torch.Tensor) -> torch.Tensor:
        """``(B, T, 17, 2)`` → ``(B, 17, 3)`` with the optional flip average."""
        out = self.net(poses_2d)
        if self.hparams.flip_test:
            flipped = self.net(torch.from_numpy(flip_2d(poses_2d.cpu().numpy())).to(poses_2d))
            out = 0.5 * (out + torch.from_numpy(flip_3d(flipped.cpu().numpy())).to(out))
        return out

    def training_step(self, batch, _):
        if is_empty_batch(batch):
            return None
        loss = metrics.mpjpe(self(batch["poses_2d"]), batch["target"]).mean()
        self.log("train_loss", loss, prog_bar=True, batch_size=len(batch["target"]))
        return loss

    def _eval_step(self, batch) -> None:
        if is_empty_batch(batch):
            return
        pred = self.lift(batch["poses_2d"]).cpu().numpy()
        target = batch["target"].cpu().numpy()
        for b in range(len(pred)):
            self._outputs.append((batch["item_id"][b], batch["action"][b], pred[b], target[b]))

    def validation_step(self, batch, _):
        self._eval_step(batch)

    def test_step(self, batch, _):
        self._eval_step(batch)

    def _epoch_end(self, stage: str) -> None:
        unique = {o[0]: o for o in self._gathered()}
        if not unique:
            return
        rows = list(unique.values())
        report = metrics.lifting_report(
            np.stack([r[2] for r in rows]), np.stack([r[3] for r in rows]), [r[1] for r in rows]
        )
        for key in ("mpjpe_mm", "p_mpjpe_mm", "n_mpjpe_mm"):
            self.log(f"{stage}/{key}", report[key], prog_bar=key == "mpjpe_mm")

    def on_validation_epoch_end(self):
        self._epoch_end("val")

    def on_test_epoch_end(self):
        self._epoch_end("test")

    @torch.no_grad()
    def lift_sequence(self, poses_2d: np.ndarray) -> np.ndarray:
        """A whole clip ``(N, 17, 2)`` normalised → ``(N, 17, 3)`` metres, root-relative."""
        windows = stack_windows(np.asarray(poses_2d, np.float32), self.hparams.frames)
        out = []
        for i in range(0, len(windows), self.hparams.predict_chunk):
            chunk = torch.from_numpy(windows[i : i + self.hparams.predict_chunk]).to(self.device)
            out.append(self.lift(chunk).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 17, 3), np.float32)

    def predict_step(self, batch, _) -> list[dict]:
        seq = batch["sequence"]
        joints = self.lift_sequence(seq.poses_2d)
        item = {
            "item_id": batch["item_id"],
            "joints_3d": joints,
            "poses_2d": seq.poses_2d,
            "subject": seq.subject,
            "action": seq.action,
            "camera": seq.camera,
        }
        if seq.poses_3d is not None:
            item["metrics"] = {
                "mpjpe_mm": float(
                    metrics.mpjpe(
                        torch.from_numpy(joints).double(), torch.from_numpy(seq.poses_3d).double()
                    ).mean()
                    * 1000
                )
            }
        return [item]
