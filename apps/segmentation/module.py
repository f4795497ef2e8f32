"""LightningModules: semantic segmentation and text-conditioned (grounding/referring).

Both log their metrics as ``val/<key>`` / ``test/<key>`` with the registry keys, and their
``predict_step`` returns one dict per item for :mod:`tessera.apps.segmentation.writer`.
Validation, test, ``evaluate`` and the prediction summary all score the same predictions:
logits resized back to each image's original size (bilinear) against the full-resolution
target (mmseg; LAVT/ReLA for grounding), see :meth:`SegmentationTask.predict_items`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Literal

import lightning as L
import torch
import torch.nn.functional as F

from tessera.apps.segmentation.inference import (
    Inference,
    check_inference,
    network_logits,
    to_original_size,
)
from tessera.apps.segmentation.metrics import (
    GroundingIoU,
    SemanticIoU,
    intersect_and_union,
    sample_iou,
)
from tessera.apps.segmentation.model import (
    Bottleneck,
    SemanticSegmenter,
    SentenceAttentionSegmenter,
)
from tessera.datamodules.common import is_empty_batch


class SegmentationTask(L.LightningModule, ABC):
    """AdamW with a cosine schedule over the run; metrics reset per evaluation epoch.

    Args:
        lr: peak learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps.
    """

    def __init__(self, lr: float = 2e-3, weight_decay: float = 1e-4, warmup_steps: int = 50):
        super().__init__()
        self.lr, self.weight_decay, self.warmup_steps = lr, weight_decay, warmup_steps

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = min(self.warmup_steps, total // 2)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1 + torch.cos(torch.tensor(torch.pi * min(progress, 1.0)))).item()

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def _log_metrics(self, stage: str, metrics: dict) -> None:
        for key, value in metrics.items():
            if value.dim() == 0:
                self.log(f"{stage}/{key}", value.float(), prog_bar=key in ("miou", "giou"))

    @abstractmethod
    def predict_items(self, batch) -> list[torch.Tensor]:
        """Per item, the predicted labels ``(H, W)`` at the image's original size."""

    def update_metric(self, metric, batch) -> None:
        """Add a batch with full-resolution ``target`` s to ``metric`` (one image at a time)."""
        if is_empty_batch(batch):
            return
        for pred, target in zip(self.predict_items(batch), batch["target"], strict=True):
            metric.update(pred[None].cpu(), target[None].cpu())

    def _eval_step(self, batch, metric) -> None:
        self.update_metric(metric, batch)

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, self.val_metric)

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, self.test_metric)

    def on_validation_epoch_end(self):
        self._log_metrics("val", self.val_metric.compute())
        self.val_metric.reset()

    def on_test_epoch_end(self):
        self._log_metrics("test", self.test_metric.compute())
        self.test_metric.reset()


class SemanticSegmentation(SegmentationTask):
    """Semantic / medical segmentation (cross-entropy, mmseg mIoU/mDice).

    Args:
        num_classes: K (2 for binary medical masks).
        class_names: names for tables and summaries (default ``class<k>``).
        ignore_index: label value left out of loss and metrics.
        backbone, pretrained, out_indices, decoder_dim, bottleneck, heads, psa_mode, dropout,
            axial_positional: see :class:`~tessera.apps.segmentation.model.SemanticSegmenter`.
        inference: ``whole`` image or ``slide`` (windows of ``test_crop`` every
            ``test_stride`` pixels, logits averaged: mmseg ``mode='slide'``) in validation,
            test, evaluate and predict.
        test_crop, test_stride: (H, W) of the sliding windows.
        lr, weight_decay, warmup_steps: see :class:`SegmentationTask`.
    """

    mode = "semantic"

    def __init__(
        self,
        num_classes: int = 4,
        class_names: Sequence[str] | None = None,
        ignore_index: int = 255,
        backbone: str = "lcnet_050",
        pretrained: bool = False,
        out_indices: Sequence[int] = (1, 2, 3),
        decoder_dim: int = 64,
        bottleneck: Bottleneck = "axial",
        heads: int = 4,
        psa_mode: Literal["parallel", "sequential"] = "parallel",
        dropout: float = 0.1,
        axial_positional: bool = True,
        inference: Inference = "whole",
        test_crop: tuple[int, int] | None = None,
        test_stride: tuple[int, int] | None = None,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        warmup_steps: int = 50,
    ):
        super().__init__(lr, weight_decay, warmup_steps)
        self.save_hyperparameters()
        check_inference(inference, test_crop, test_stride)
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} names for {num_classes} classes")
        self.class_names = list(class_names or [f"class{k}" for k in range(num_classes)])
        self.ignore_index = ignore_index
        self.net = SemanticSegmenter(
            num_classes,
            backbone,
            pretrained,
            out_indices,
            decoder_dim,
            bottleneck,
            heads,
            psa_mode,
            dropout,
            axial_positional,
        )
        self.val_metric = SemanticIoU(num_classes, ignore_index)
        self.test_metric = SemanticIoU(num_classes, ignore_index)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)

    def training_step(self, batch, batch_idx):
        if is_empty_batch(batch):
            return None
        logits = self(batch["image"])
        loss = F.cross_entropy(logits, batch["label"], ignore_index=self.ignore_index)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["item_id"]))
        return loss

    def setup(self, stage: str) -> None:
        """The datamodule's classes must be the model's (names adopted when not given)."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        num_classes = getattr(datamodule, "num_classes", None)
        if num_classes is not None and num_classes != self.hparams.num_classes:
            raise ValueError(
                f"the data has {num_classes} classes but the model num_classes="
                f"{self.hparams.num_classes}; set --model.init_args.num_classes {num_classes}"
            )
        if num_classes is not None and self.hparams.class_names is None:
            self.class_names = list(datamodule.class_names)
            self.hparams.class_names = self.class_names

    def logits(self, batch) -> list[torch.Tensor]:
        """Per item, logits ``(K, H, W)`` at the original image size."""
        hp = self.hparams
        image = batch["image"].to(self.device)
        out = network_logits(self, image, hp.inference, hp.test_crop, hp.test_stride)
        return to_original_size(out, batch["img_size"], batch["orig_size"])

    def predict_items(self, batch) -> list[torch.Tensor]:
        return [logits.argmax(0) for logits in self.logits(batch)]

    def predict_step(self, batch, batch_idx):
        if is_empty_batch(batch):
            return []
        out = []
        preds = self.predict_items(batch)
        for n, (item_id, pred) in enumerate(zip(batch["item_id"], preds, strict=True)):
            binary = bool(batch["binary"][n]) if "binary" in batch else False
            item = {
                "item_id": item_id,
                "path": batch["path"][n],
                "pred": (pred == 1 if binary else pred).cpu().numpy(),
            }
            if "target" in batch:
                i, u, p, lab = intersect_and_union(
                    pred.cpu(),
                    batch["target"][n].cpu(),
                    self.hparams.num_classes,
                    self.ignore_index,
                )
                item["areas"] = {
                    "i": i.tolist(),
                    "u": u.tolist(),
                    "p": p.tolist(),
                    "l": lab.tolist(),
                }
            out.append(item)
        return out


class ReferringSegmentation(SegmentationTask):
    """Text-conditioned binary segmentation (answer grounding, referring expressions).

    Loss: binary cross-entropy + soft Dice over the batch, padding (255) ignored.

    Args:
        text_encoder: ``{class_path, init_args}`` of the sentence encoder (None = tiny).
        freeze_text: keep the text encoder's weights fixed.
        threshold: probability above which a pixel is in the mask.
        min_area: a mask with fewer pixels (at the network input size) is emptied: the
            "no referent" decision (GRES N-acc); set on validation data by the recipe.
        dice_weight: weight of the soft Dice term.
        backbone, pretrained, out_indices, dropout, hidden_mult, use_sab, input_norm,
            rescale_gates: see
            :class:`~tessera.apps.segmentation.model.SentenceAttentionSegmenter`.
        lr, weight_decay, warmup_steps: see :class:`SegmentationTask`.
    """

    mode = "grounding"

    def __init__(
        self,
        text_encoder: dict | None = None,
        freeze_text: bool = False,
        threshold: float = 0.5,
        min_area: int = 0,
        dice_weight: float = 1.0,
        backbone: str = "lcnet_050",
        pretrained: bool = False,
        out_indices: Sequence[int] = (0, 1, 2, 3, 4),
        dropout: float = 0.5,
        hidden_mult: int = 4,
        use_sab: bool = True,
        input_norm: Literal["instance", "mean_std"] = "instance",
        rescale_gates: bool = False,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        warmup_steps: int = 50,
    ):
        super().__init__(lr, weight_decay, warmup_steps)
        self.save_hyperparameters()
        self.threshold, self.min_area, self.dice_weight = threshold, min_area, dice_weight
        self.net = SentenceAttentionSegmenter(
            text_encoder,
            backbone,
            pretrained,
            out_indices,
            dropout,
            hidden_mult,
            use_sab,
            input_norm,
            rescale_gates,
        )
        if freeze_text:
            self.net.text_encoder.requires_grad_(False)
        self.val_metric = GroundingIoU()
        self.test_metric = GroundingIoU()

    def forward(self, image, texts=None, embedding=None) -> torch.Tensor:
        return self.net(image, texts, embedding)

    def loss(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        logits = logits[:, 0]
        keep = label != 255
        target = (label == 1).float()
        bce = F.binary_cross_entropy_with_logits(logits[keep], target[keep])
        prob = torch.sigmoid(logits) * keep
        dice = 1 - (2 * (prob * target).sum() + 1) / (prob.sum() + target.sum() + 1)
        return bce + self.dice_weight * dice

    def training_step(self, batch, batch_idx):
        if is_empty_batch(batch):
            return None
        loss = self.loss(self(batch["image"], batch["text"]), batch["label"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["item_id"]))
        return loss

    def binarize(self, prob: torch.Tensor) -> torch.Tensor:
        """``(B, H, W)`` probabilities -> masks, with the threshold and the min-area rule."""
        mask = prob > self.threshold
        return mask & (mask.flatten(1).sum(1) >= self.min_area)[:, None, None]

    def predict_mask(self, image, texts=None, embedding=None) -> torch.Tensor:
        """Masks ``(B, h, w)`` at the network input size."""
        return self.binarize(torch.sigmoid(self(image, texts, embedding)[:, 0]))

    def probabilities(self, batch) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(probabilities ``(B, h, w)`` at the network size, ``[(H, W)]`` at the original)."""
        logits = self(batch["image"].to(self.device), batch["text"])
        full = to_original_size(logits, batch["img_size"], batch["orig_size"])
        return torch.sigmoid(logits[:, 0]), [torch.sigmoid(f[0]) for f in full]

    def masks(self, small: torch.Tensor, full: list[torch.Tensor]) -> list[torch.Tensor]:
        """Original-size masks: threshold, emptied when the network-size mask fails the
        ``min_area`` rule (the no-target decision)."""
        found = self.binarize(small).flatten(1).any(1)
        return [(f > self.threshold) & found[n] for n, f in enumerate(full)]

    def predict_items(self, batch) -> list[torch.Tensor]:
        return self.masks(*self.probabilities(batch))

    def predict_step(self, batch, batch_idx):
        if is_empty_batch(batch):
            return []
        out = []
        for n, (item_id, mask) in enumerate(
            zip(batch["item_id"], self.predict_items(batch), strict=True)
        ):
            item = {
                "item_id": item_id,
                "path": batch["path"][n],
                "text": batch["text"][n],
                "pred": mask.cpu().numpy(),
            }
            if "target" in batch:
                target = batch["target"][n].cpu()
                inter, union, iou = sample_iou(mask.cpu()[None], target[None])
                has_target = bool((target == 1).any())
                found = bool(mask.any())
                item["iou"] = {
                    "i": float(inter),
                    "u": float(union),
                    "iou": float(iou) if has_target else float(not found),
                    "target": float(has_target),
                    "found": float(found),
                }
            out.append(item)
        return out
