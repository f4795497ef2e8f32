"""CenterPoint head (Yin et al., "Center-based 3D Object Detection and Tracking", CVPR 2021;
OpenPCDet ``dense_heads/center_head.py``): class heatmaps with Gaussian targets and focal
loss, L1 on (offset, z, log size, cos/sin yaw) at the object centres, top-K decoding and
per-class rotated NMS.

Shapes: features (B, C, H, W) -> ``heatmap (B, K, H, W)`` logits and ``regression
(B, 8, H, W)`` = (dx_cell, dy_cell, z, log dx, log dy, log dz, cos, sin).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from tessera.apps.detection3d.nms import circle_nms, rotated_nms


def gaussian_radius(height: float, width: float, min_overlap: float = 0.1) -> float:
    """CornerNet's radius: the largest centre shift keeping IoU >= ``min_overlap`` in any of
    the three corner cases (both inside, both outside, one each)."""
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2**2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def draw_gaussian(heatmap: torch.Tensor, cx: int, cy: int, radius: int) -> None:
    """Max-merge a 2-D Gaussian with sigma (2r+1)/6 centred at (cx, cy) into (H, W)."""
    h, w = heatmap.shape
    sigma = (2 * radius + 1) / 6
    ys = torch.arange(-radius, radius + 1, dtype=heatmap.dtype)
    g = torch.exp(-(ys[:, None] ** 2 + ys[None] ** 2) / (2 * sigma**2))
    g[g < torch.finfo(g.dtype).eps * g.max()] = 0
    left, right = min(cx, radius), min(w - cx, radius + 1)
    top, bottom = min(cy, radius), min(h - cy, radius + 1)
    region = heatmap[cy - top : cy + bottom, cx - left : cx + right]
    patch = g[radius - top : radius + bottom, radius - left : radius + right]
    torch.maximum(region, patch, out=region)


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CornerNet focal loss (alpha 2, beta 4) normalised by the number of peaks."""
    pred = torch.sigmoid(logits.float()).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    neg_weight = (1 - target).pow(4)
    pos_loss = (torch.log(pred) * (1 - pred).pow(2) * pos).sum()
    neg_loss = (torch.log(1 - pred) * pred.pow(2) * neg_weight * (1 - pos)).sum()
    return -(pos_loss + neg_loss) / pos.sum().clamp(min=1)


def _branch(cin: int, cout: int, bias_fill: float | None = None) -> nn.Sequential:
    seq = nn.Sequential(
        nn.Conv2d(cin, cin, 3, 1, 1, bias=False),
        nn.BatchNorm2d(cin),
        nn.ReLU(),
        nn.Conv2d(cin, cout, 3, 1, 1),
    )
    if bias_fill is not None:
        nn.init.constant_(seq[-1].bias, bias_fill)
    else:
        nn.init.kaiming_normal_(seq[-1].weight, nonlinearity="relu")
        nn.init.zeros_(seq[-1].bias)
    return seq


class CenterHead(nn.Module):
    """Args:
    in_channels: BEV feature channels.
    class_names: heatmap classes.
    point_cloud_range, voxel_size, stride: map feature cells to metres.
    shared_channels: width of the shared 3x3 conv (64 in OpenPCDet).
    min_overlap, min_radius: Gaussian target radius (0.1 and 2 as in CenterPoint).
    loc_weight: weight of the L1 box loss against the heatmap loss.
    max_objects: targets per frame.
    topk, score_threshold: decoding.
    nms: ``rotated`` (IoU threshold per class in ``nms_threshold``) or ``circle``
        (``nms_threshold`` in metres).
    nms_threshold: one value or one per class.
    max_detections: boxes kept per frame after NMS.
    symmetric_heading: for objects whose front and back look alike (the synthetic world's
        boxes), the yaw loss takes the nearer of the targets (cos, sin) and (-cos, -sin);
        IoU-based AP is the same for both. Off for real data, where the front shows.
    """

    def __init__(
        self,
        in_channels: int,
        class_names: Sequence[str],
        point_cloud_range,
        voxel_size,
        stride: float,
        shared_channels: int = 64,
        min_overlap: float = 0.1,
        min_radius: int = 2,
        loc_weight: float = 2.0,
        max_objects: int = 500,
        topk: int = 500,
        score_threshold: float = 0.1,
        nms: str = "rotated",
        nms_threshold: float | Sequence[float] = 0.2,
        max_detections: int = 100,
        symmetric_heading: bool = False,
    ):
        super().__init__()
        if nms not in ("rotated", "circle"):
            raise ValueError(f"nms must be 'rotated' or 'circle', got {nms!r}")
        self.class_names = list(class_names)
        self.pc_range = list(point_cloud_range)
        self.voxel_size = list(voxel_size)
        self.stride = float(stride)
        self.min_overlap, self.min_radius = min_overlap, min_radius
        self.loc_weight, self.max_objects = loc_weight, max_objects
        self.topk, self.score_threshold = topk, score_threshold
        self.nms = nms
        thresholds = (
            [nms_threshold] * len(self.class_names)
            if isinstance(nms_threshold, (int, float))
            else list(nms_threshold)
        )
        if len(thresholds) != len(self.class_names):
            raise ValueError(f"nms_threshold needs one value per class {self.class_names}")
        self.nms_threshold = [float(t) for t in thresholds]
        self.max_detections = max_detections
        self.symmetric_heading = symmetric_heading
        self.shared = nn.Sequential(
            nn.Conv2d(in_channels, shared_channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(shared_channels),
            nn.ReLU(),
        )
        self.heatmap = _branch(shared_channels, len(self.class_names), bias_fill=-2.19)
        self.regression = nn.ModuleDict(
            {
                "center": _branch(shared_channels, 2),
                "center_z": _branch(shared_channels, 1),
                "dim": _branch(shared_channels, 3),
                "rot": _branch(shared_channels, 2),
            }
        )

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.shared(features)
        reg = torch.cat([self.regression[k](x) for k in ("center", "center_z", "dim", "rot")], 1)
        return {"heatmap": self.heatmap(x), "regression": reg}

    def cell_size(self) -> tuple[float, float]:
        return self.voxel_size[0] * self.stride, self.voxel_size[1] * self.stride

    def targets(self, boxes: Sequence[torch.Tensor], labels: Sequence[torch.Tensor], shape):
        """Heatmaps (B, K, H, W), regression targets (B, O, 8), flat indices and mask (B, O)."""
        b, h, w = len(boxes), shape[0], shape[1]
        k, o = len(self.class_names), self.max_objects
        heat = torch.zeros(b, k, h, w)
        reg = torch.zeros(b, o, 8)
        ind = torch.zeros(b, o, dtype=torch.long)
        mask = torch.zeros(b, o)
        sx, sy = self.cell_size()
        for i, (bx, lb) in enumerate(zip(boxes, labels, strict=True)):
            n = 0
            for box, label in zip(bx.cpu().double().tolist(), lb.cpu().tolist(), strict=True):
                if n >= o:
                    break
                fx, fy = (box[0] - self.pc_range[0]) / sx, (box[1] - self.pc_range[1]) / sy
                cx, cy = math.floor(fx), math.floor(fy)
                if not (0 <= cx < w and 0 <= cy < h) or min(box[3:6]) <= 0:
                    continue
                radius = gaussian_radius(box[4] / sy, box[3] / sx, self.min_overlap)
                draw_gaussian(heat[i, int(label)], cx, cy, max(self.min_radius, int(radius)))
                reg[i, n] = torch.tensor(
                    [
                        fx - cx,
                        fy - cy,
                        box[2],
                        math.log(box[3]),
                        math.log(box[4]),
                        math.log(box[5]),
                        math.cos(box[6]),
                        math.sin(box[6]),
                    ]
                )
                ind[i, n] = cy * w + cx
                mask[i, n] = 1
                n += 1
        return heat, reg, ind, mask

    def loss(self, out: dict[str, torch.Tensor], boxes, labels) -> dict[str, torch.Tensor]:
        heat_logits, reg_pred = out["heatmap"], out["regression"]
        bsz, _, h, w = heat_logits.shape
        heat, reg, ind, mask = (
            t.to(heat_logits.device) for t in self.targets(boxes, labels, (h, w))
        )
        hm_loss = focal_loss(heat_logits, heat)
        pred = (
            reg_pred.view(bsz, 8, h * w).gather(2, ind[:, None].expand(-1, 8, -1)).transpose(1, 2)
        )
        l1 = (pred - reg).abs()
        per_object = l1.sum(-1)
        if self.symmetric_heading:
            flipped = (pred[..., 6:] + reg[..., 6:]).abs().sum(-1)
            per_object = l1[..., :6].sum(-1) + torch.minimum(l1[..., 6:].sum(-1), flipped)
        loc_loss = (per_object * mask).sum() / mask.sum().clamp(min=1)
        return {
            "loss": hm_loss + self.loc_weight * loc_loss,
            "hm_loss": hm_loss,
            "loc_loss": loc_loss,
        }

    @torch.no_grad()
    def decode(self, out: dict[str, torch.Tensor]) -> list[dict[str, np.ndarray]]:
        """Per frame ``boxes (D, 7)`` LiDAR, ``scores (D,)``, ``labels (D,)`` after NMS."""
        heat = torch.sigmoid(out["heatmap"].float())
        reg = out["regression"].float()
        bsz, k, h, w = heat.shape
        sx, sy = self.cell_size()
        results = []
        for i in range(bsz):
            scores, flat = heat[i].reshape(-1).topk(min(self.topk, k * h * w))
            keep = scores > self.score_threshold
            scores, flat = scores[keep], flat[keep]
            label, pix = flat // (h * w), flat % (h * w)
            cy, cx = pix // w, pix % w
            r = reg[i].reshape(8, -1)[:, pix]
            x = (cx + r[0]) * sx + self.pc_range[0]
            y = (cy + r[1]) * sy + self.pc_range[1]
            dims = r[3:6].clamp(max=5.0).exp()
            heading = torch.atan2(r[7], r[6])
            boxes = (
                torch.stack([x, y, r[2], dims[0], dims[1], dims[2], heading], 1)
                .cpu()
                .double()
                .numpy()
            )
            scores, label = scores.cpu().numpy(), label.cpu().numpy()
            kept = []
            for c in range(k):
                idx = np.flatnonzero(label == c)
                if len(idx) == 0:
                    continue
                if self.nms == "rotated":
                    sel = rotated_nms(boxes[idx], scores[idx], self.nms_threshold[c])
                else:
                    sel = circle_nms(boxes[idx], scores[idx], self.nms_threshold[c])
                kept.append(idx[sel])
            sel = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
            sel = sel[np.argsort(-scores[sel], kind="stable")][: self.max_detections]
            results.append({"boxes": boxes[sel], "scores": scores[sel], "labels": label[sel]})
        return results
