"""Segmentation metrics with the reference definitions.

Semantic (mmsegmentation ``IoUMetric``): per-class intersection, union, predicted and label
areas are summed over the **whole dataset** after dropping ``ignore_index`` pixels;
IoU_c = I_c / U_c, Dice_c = 2 I_c / (P_c + L_c); ``miou``/``mdice`` are nan-means over
classes (a class absent from both predictions and labels has NaN IoU and is left out).

Grounding / referring, as GRES (Liu et al., CVPR 2023, ``henghuiding/ReLA``
``refer_evaluation.py``) defines them; a sample "predicts no target" when its mask is empty:
- target samples (non-empty target): IoU_i = I_i / U_i (0 when the prediction is empty);
- no-target samples: IoU_i = 1 when predicted empty (true positive of the no-target
  decision), else 0, and their predicted area enters the cIoU union;
- ``giou`` = mean IoU_i over all samples; ``ciou`` = sum I / sum U over all samples (1 if
  every union is empty);
- ``prec_at_k`` = fraction of **target** samples with IoU_i >= k, k in 0.5..0.9;
- ``n_acc`` = no-target samples predicted empty / no-target samples; ``t_acc`` = target
  samples predicted non-empty / target samples (both when the split has no-target samples).
On RefCOCO-style data without no-target samples these reduce to LAVT's mIoU (= gIoU),
oIoU (= cIoU) and precision@k. Pixels labelled 255 count in neither I nor U.

All states are sums, so both metrics reduce correctly across DDP processes.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

PREC_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def intersect_and_union(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = 255
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-class (intersection, union, pred area, label area) as float64 ``(K,)`` tensors."""
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    keep = target != ignore_index
    pred, target = pred[keep].long(), target[keep].long()
    if target.numel() and (target.min() < 0 or target.max() >= num_classes):
        raise ValueError(f"target has values outside 0..{num_classes - 1} and {ignore_index}")
    hits = pred[pred == target]
    area_i = torch.bincount(hits, minlength=num_classes)[:num_classes].double()
    area_p = torch.bincount(pred.clamp(0, num_classes), minlength=num_classes + 1)[:num_classes]
    area_l = torch.bincount(target, minlength=num_classes).double()
    area_p = area_p.double()
    return area_i, area_p + area_l - area_i, area_p, area_l


class SemanticIoU(Metric):
    """Dataset-level mIoU / mDice, mmseg semantics.

    Args:
        num_classes: K.
        ignore_index: label value left out of every count.

    ``update(pred, target)``: class indices of equal shape ``(B, H, W)``.
    ``compute()``: ``{"miou", "mdice", "aacc", "iou": (K,), "dice": (K,)}``.
    """

    full_state_update = False

    def __init__(self, num_classes: int, ignore_index: int = 255, **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.ignore_index = num_classes, ignore_index
        for name in ("area_intersect", "area_union", "area_pred", "area_label"):
            self.add_state(name, torch.zeros(num_classes, dtype=torch.float64), "sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        i, u, p, lab = intersect_and_union(pred, target, self.num_classes, self.ignore_index)
        self.area_intersect += i.to(self.device)
        self.area_union += u.to(self.device)
        self.area_pred += p.to(self.device)
        self.area_label += lab.to(self.device)

    def compute(self) -> dict[str, torch.Tensor]:
        iou = self.area_intersect / self.area_union  # NaN where the class never occurs
        dice = 2 * self.area_intersect / (self.area_pred + self.area_label)
        return {
            "miou": iou.nanmean(),
            "mdice": dice.nanmean(),
            "aacc": self.area_intersect.sum() / self.area_label.sum(),
            "iou": iou,
            "dice": dice,
        }


def sample_iou(
    pred: torch.Tensor, target: torch.Tensor, ignore_index: int = 255
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample (I, U, IoU) for binary masks ``(B, H, W)``, with the empty-mask policy."""
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    keep = target != ignore_index
    p, t = (pred > 0) & keep, (target == 1) & keep
    inter = (p & t).flatten(1).sum(1).double()
    union = (p | t).flatten(1).sum(1).double()
    iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
    return inter, union, iou


class GroundingIoU(Metric):
    """gIoU, cIoU, precision@k, N-acc and T-acc (GRES definitions, module docstring).

    ``update(pred, target)``: pred ``(B, H, W)`` bool/0-1, target ``(B, H, W)`` 0/1/255.
    """

    full_state_update = False
    STATES = ("iou_sum", "count", "inter_sum", "union_sum", "targets", "empty", "empty_hit")

    def __init__(self, ignore_index: int = 255, **kwargs):
        super().__init__(**kwargs)
        self.ignore_index = ignore_index
        for name in (*self.STATES, "target_found"):
            self.add_state(name, torch.zeros((), dtype=torch.float64), "sum")
        self.add_state("hits", torch.zeros(len(PREC_THRESHOLDS), dtype=torch.float64), "sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        inter, union, iou = (t.to(self.device) for t in sample_iou(pred, target, self.ignore_index))
        has_target = ((target == 1).flatten(1).sum(1) > 0).to(self.device)
        found = (((pred > 0) & (target != self.ignore_index)).flatten(1).sum(1) > 0).to(self.device)
        iou = torch.where(has_target, iou, (~found).double())
        self.iou_sum += iou.sum()
        self.count += iou.numel()
        self.inter_sum += inter.sum()
        self.union_sum += union.sum()
        self.targets += has_target.sum()
        self.target_found += (has_target & found).sum()
        thresholds = torch.tensor(PREC_THRESHOLDS, dtype=torch.float64, device=self.device)
        self.hits += ((iou[:, None] >= thresholds) & has_target[:, None]).sum(0)
        self.empty += (~has_target).sum()
        self.empty_hit += (~has_target & ~found).sum()

    def compute(self) -> dict[str, torch.Tensor]:
        out = {
            "giou": self.iou_sum / self.count,
            "ciou": self.inter_sum / self.union_sum
            if self.union_sum > 0
            else torch.ones_like(self.union_sum),
        }
        for k, hits in zip(PREC_THRESHOLDS, self.hits / self.targets.clamp(min=1), strict=True):
            out[f"prec_at_{k}"] = hits
        if self.empty > 0:
            out["n_acc"] = self.empty_hit / self.empty
            if self.targets > 0:
                out["t_acc"] = self.target_found / self.targets
        return out
