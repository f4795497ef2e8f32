"""KITTI 3-D detection AP (BEV, 3-D, 2-D) with the official matching rules, on CPU.

Follows the definitions of the KITTI devkit as implemented by OpenPCDet's
``kitti_object_eval_python/eval.py`` (``clean_data``, ``compute_statistics_jit``,
``get_thresholds``, ``get_mAP`` / ``get_mAP_R40``):

- a ground truth of the evaluated class counts when its 2-D box is taller than 40/25/25 px
  and its occlusion/truncation are within 0/1/2 and 0.15/0.3/0.5 (easy/moderate/hard); Van
  for Car and Person_sitting for Pedestrian are ignored (neither TP nor FN), as are
  ground truths of the class outside the difficulty;
- a detection whose 2-D box is shorter than the difficulty's minimum height is ignored;
- DontCare regions excuse unmatched detections only in the 2-D box metric;
- matches need IoU strictly above 0.7 (Car) / 0.5 (Pedestrian, Cyclist);
- 41 score thresholds are taken where recall crosses k/40; R40 AP averages interpolated
  precision at points 1..40, R11 at points 0, 4, ..., 40 (both in percent).

Rotated IoUs are exact (:mod:`.iou`); the official numba.cuda IoU is float32 and degenerate
for coincident boxes, so results agree except for boxes within float32 noise of a threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tessera.apps.detection3d.iou import bev_intersection, bev_iou, iou3d
from tessera.datamodules.detection3d.labels import (
    MAX_OCCLUSION,
    MAX_TRUNCATION,
    MIN_HEIGHT,
    KittiLabels,
)

DIFFICULTIES = ("easy", "moderate", "hard")
KITTI_MIN_OVERLAP = {
    "Car": 0.7,
    "Pedestrian": 0.5,
    "Cyclist": 0.5,
    "Van": 0.7,
    "Person_sitting": 0.5,
    "Truck": 0.7,
}
IGNORED_NEIGHBOUR = {"car": "van", "pedestrian": "person_sitting"}
N_SAMPLE_PTS = 41
METRIC_NAMES = {"bbox": "2d", "bev": "bev", "3d": "3d"}


@dataclass
class FrameMatchInput:
    """One frame's inputs to the matcher for one class and difficulty."""

    overlaps: np.ndarray  # (n_dt, n_gt)
    ignored_gt: np.ndarray  # (n_gt,) 0 valid, 1 ignored, -1 other class
    ignored_dt: np.ndarray  # (n_dt,) 0 valid, 1 ignored (too small), -1 other class
    scores: np.ndarray  # (n_dt,)
    dontcare_overlaps: np.ndarray | None = None  # (n_dt, n_dc), 2-D metric only


def match_frame(frame: FrameMatchInput, min_overlap: float, thresh: float, compute_fp: bool):
    """``compute_statistics_jit``: greedy matching of one frame at one score threshold.

    Returns ``(tp, fp, fn, tp_scores)``.
    """
    n_dt, n_gt = frame.overlaps.shape
    ig_gt, ig_dt, scores = frame.ignored_gt, frame.ignored_dt, frame.scores
    below = scores < thresh if compute_fp else np.zeros(n_dt, dtype=bool)
    assigned = np.zeros(n_dt, dtype=bool)
    candidates = frame.overlaps > min_overlap
    tp = fn = 0
    tp_scores = []
    for i in range(n_gt):
        if ig_gt[i] == -1:
            continue
        det, found, max_overlap, took_ignored = -1, False, 0.0, False
        best_score = -np.inf
        for j in np.flatnonzero(candidates[:, i]):
            if ig_dt[j] == -1 or assigned[j] or below[j]:
                continue
            overlap = frame.overlaps[j, i]
            if not compute_fp:
                if scores[j] > best_score:
                    det, found, best_score = j, True, scores[j]
            elif (overlap > max_overlap or took_ignored) and ig_dt[j] == 0:
                det, found, max_overlap, took_ignored = j, True, overlap, False
            elif not found and ig_dt[j] == 1:
                det, found, took_ignored = j, True, True
        if not found:
            if ig_gt[i] == 0:
                fn += 1
        elif ig_gt[i] == 1 or ig_dt[det] == 1:
            assigned[det] = True
        else:
            tp += 1
            tp_scores.append(scores[det])
            assigned[det] = True
    fp = 0
    if compute_fp:
        free = ~assigned & (ig_dt == 0) & ~below
        fp = int(free.sum())
        if frame.dontcare_overlaps is not None and frame.dontcare_overlaps.shape[1]:
            for c in range(frame.dontcare_overlaps.shape[1]):
                hit = free & (frame.dontcare_overlaps[:, c] > min_overlap)
                fp -= int(hit.sum())
                free &= ~hit
    return tp, fp, fn, tp_scores


def recall_thresholds(scores: Sequence[float], num_gt: int) -> list[float]:
    """``get_thresholds``: the scores at which recall first reaches k/40, k = 0..40."""
    scores = sorted(scores, reverse=True)
    current, out = 0.0, []
    for i, score in enumerate(scores):
        left = (i + 1) / num_gt
        right = (i + 2) / num_gt if i < len(scores) - 1 else left
        if (right - current) < (current - left) and i < len(scores) - 1:
            continue
        out.append(score)
        current += 1 / (N_SAMPLE_PTS - 1.0)
    return out


def precision_curve(frames: list[FrameMatchInput], min_overlap: float, num_valid_gt: int):
    """Interpolated precision at the (up to 41) recall thresholds, zeros past the last one."""
    tp_scores = []
    for frame in frames:
        tp_scores += match_frame(frame, min_overlap, 0.0, compute_fp=False)[3]
    thresholds = recall_thresholds(tp_scores, num_valid_gt)[:N_SAMPLE_PTS]
    counts = np.zeros((len(thresholds), 3))  # tp, fp, fn
    for frame in frames:
        # The matching at threshold t only depends on which detections score >= t.
        cache: dict[int, tuple[int, int, int]] = {}
        for t, thresh in enumerate(thresholds):
            active = int((frame.scores >= thresh).sum())
            if active not in cache:
                cache[active] = match_frame(frame, min_overlap, thresh, compute_fp=True)[:3]
            counts[t] += cache[active]
    precision = np.zeros(N_SAMPLE_PTS)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision[: len(thresholds)] = counts[:, 0] / (counts[:, 0] + counts[:, 1])
    for i in range(len(thresholds)):
        precision[i] = np.max(precision[i:])
    return precision


def ap_r40(precision: np.ndarray) -> float:
    return float(precision[1:].sum() / 40 * 100)


def ap_r11(precision: np.ndarray) -> float:
    return float(precision[::4].sum() / 11 * 100)


def _classify(gt: KittiLabels, dt: KittiLabels, cls: str, difficulty: int):
    """``clean_data``: ignore flags, valid count and DontCare boxes of one frame."""
    name = cls.lower()
    neighbour = IGNORED_NEIGHBOUR.get(name)
    height = gt.bbox[:, 3] - gt.bbox[:, 1]
    ignored_gt = np.full(len(gt), -1, dtype=np.int64)
    for i, gt_name in enumerate(gt.name):
        gt_name = gt_name.lower()
        valid = 1 if gt_name == name else (0 if gt_name == neighbour else -1)
        hard = (
            gt.occluded[i] > MAX_OCCLUSION[difficulty]
            or gt.truncated[i] > MAX_TRUNCATION[difficulty]
            or height[i] <= MIN_HEIGHT[difficulty]
        )
        if valid == 1 and not hard:
            ignored_gt[i] = 0
        elif valid == 0 or (hard and valid == 1):
            ignored_gt[i] = 1
    dt_height = np.abs(dt.bbox[:, 3] - dt.bbox[:, 1])
    is_cls = np.array([n.lower() == name for n in dt.name], dtype=bool)
    ignored_dt = np.where(dt_height < MIN_HEIGHT[difficulty], 1, np.where(is_cls, 0, -1))
    dontcare = np.array([n == "DontCare" for n in gt.name], dtype=bool)
    return int((ignored_gt == 0).sum()), ignored_gt, ignored_dt.astype(np.int64), gt.bbox[dontcare]


def image_overlap(boxes: np.ndarray, query: np.ndarray, criterion: int = -1) -> np.ndarray:
    """``image_box_overlap``: 2-D IoU (criterion -1) or intersection / area of ``boxes`` (0)."""
    iw = np.minimum(boxes[:, None, 2], query[None, :, 2]) - np.maximum(
        boxes[:, None, 0], query[None, :, 0]
    )
    ih = np.minimum(boxes[:, None, 3], query[None, :, 3]) - np.maximum(
        boxes[:, None, 1], query[None, :, 1]
    )
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    area_a = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[:, None]
    area_b = ((query[:, 2] - query[:, 0]) * (query[:, 3] - query[:, 1]))[None]
    denom = area_a + area_b - inter if criterion == -1 else np.broadcast_to(area_a, inter.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(inter > 0, inter / denom, 0.0)


def camera_overlaps(dt: KittiLabels, gt: KittiLabels, metric: str) -> np.ndarray:
    """(n_dt, n_gt) overlaps in the camera frame: ``bbox`` 2-D IoU, ``bev`` rotated IoU in the
    x-z plane, ``3d`` rotated IoU with the y extent ``[y - h, y]``."""
    if metric == "bbox":
        return image_overlap(dt.bbox, gt.bbox)

    def bev(labels: KittiLabels) -> np.ndarray:
        # (x, z, l, w, -ry): a yaw ry about the camera's downward y axis turns the x-z plane
        # clockwise, i.e. by -ry in the counter-clockwise convention of :func:`bev_corners`.
        return np.c_[labels.location[:, [0, 2]], labels.dimensions[:, [2, 1]], -labels.rotation_y]

    if metric == "bev":
        return bev_iou(bev(dt), bev(gt))
    inter = bev_intersection(bev(dt), bev(gt))
    y_dt, h_dt = dt.location[:, 1], dt.dimensions[:, 0]
    y_gt, h_gt = gt.location[:, 1], gt.dimensions[:, 0]
    iw = np.minimum(y_dt[:, None], y_gt[None]) - np.maximum(
        (y_dt - h_dt)[:, None], (y_gt - h_gt)[None]
    )
    inter = inter * np.clip(iw, 0, None)
    vol_dt, vol_gt = dt.dimensions.prod(1), gt.dimensions.prod(1)
    union = vol_dt[:, None] + vol_gt[None] - inter
    return np.where(inter > 0, inter / np.maximum(union, 1e-12), 0.0)


def kitti_evaluate(
    gt_annos: Sequence[KittiLabels],
    dt_annos: Sequence[KittiLabels],
    classes: Sequence[str] = ("Car", "Pedestrian", "Cyclist"),
    metrics: Sequence[str] = ("bbox", "bev", "3d"),
    min_overlaps: dict[str, float] | None = None,
) -> dict[str, float]:
    """KITTI AP in percent for every class, metric and difficulty.

    Keys: ``<class>_<2d|bev|3d>_ap_<easy|moderate|hard>`` (R40, e.g. ``car_bev_ap_moderate``)
    and ``<class>_<...>_ap_r11_<difficulty>`` (R11); class names lower-cased.

    Args:
        gt_annos: per frame the ``label_2`` objects (DontCare, Van, ... included).
        dt_annos: per frame the detections with ``score`` and projected 2-D ``bbox``.
        classes: evaluated classes.
        metrics: any of ``bbox``, ``bev``, ``3d``.
        min_overlaps: per-class IoU threshold (default Car 0.7, Pedestrian/Cyclist 0.5).
    """
    if len(gt_annos) != len(dt_annos):
        raise ValueError(
            f"{len(gt_annos)} ground-truth frames but {len(dt_annos)} detection frames"
        )
    thresholds = {**KITTI_MIN_OVERLAP, **(min_overlaps or {})}
    out: dict[str, float] = {}
    for metric in metrics:
        overlaps = [
            camera_overlaps(dt, gt, metric) for gt, dt in zip(gt_annos, dt_annos, strict=True)
        ]
        for cls in classes:
            for d, diff in enumerate(DIFFICULTIES):
                frames, num_valid = [], 0
                for gt, dt, ov in zip(gt_annos, dt_annos, overlaps, strict=True):
                    n_valid, ig_gt, ig_dt, dc = _classify(gt, dt, cls, d)
                    num_valid += n_valid
                    dc_ov = image_overlap(dt.bbox, dc, criterion=0) if metric == "bbox" else None
                    frames.append(FrameMatchInput(ov, ig_gt, ig_dt, dt.score, dc_ov))
                precision = precision_curve(frames, thresholds[cls], num_valid)
                key = f"{cls.lower()}_{METRIC_NAMES[metric]}_ap"
                out[f"{key}_{diff}"] = ap_r40(precision)
                out[f"{key}_r11_{diff}"] = ap_r11(precision)
    return out


def lidar_evaluate(
    gt_frames: Sequence[tuple[np.ndarray, list[str]]],
    dt_frames: Sequence[tuple[np.ndarray, list[str], np.ndarray]],
    classes: Sequence[str],
    min_overlaps: dict[str, float] | None = None,
) -> dict[str, float]:
    """AP of LiDAR-frame boxes without camera rules (OpenPCDet custom datasets): every ground
    truth of the class counts, matches by rotated BEV / 3-D IoU above the class threshold,
    the same 41-point recall sampling. Keys ``<class>_<bev|3d>_ap`` (R40) and ``..._ap_r11``.

    Args:
        gt_frames: per frame ``(boxes (M, 7), names)``.
        dt_frames: per frame ``(boxes (K, 7), names, scores (K,))``.
    """
    thresholds = {**KITTI_MIN_OVERLAP, **(min_overlaps or {})}
    out: dict[str, float] = {}
    for metric in ("bev", "3d"):
        overlaps = []
        for (gb, _), (db, _, _) in zip(gt_frames, dt_frames, strict=True):
            if metric == "bev":
                overlaps.append(bev_iou(db[:, [0, 1, 3, 4, 6]], gb[:, [0, 1, 3, 4, 6]]))
            else:
                overlaps.append(iou3d(db, gb))
        for cls in classes:
            frames, num_valid = [], 0
            for (_, gn), (_, dn, ds), ov in zip(gt_frames, dt_frames, overlaps, strict=True):
                ig_gt = np.array([0 if n == cls else -1 for n in gn], dtype=np.int64)
                ig_dt = np.array([0 if n == cls else -1 for n in dn], dtype=np.int64)
                num_valid += int((ig_gt == 0).sum())
                frames.append(FrameMatchInput(ov, ig_gt, ig_dt, np.asarray(ds, dtype=np.float64)))
            threshold = thresholds.get(cls, 0.5)
            precision = precision_curve(frames, threshold, num_valid)
            out[f"{cls.lower()}_{metric}_ap"] = ap_r40(precision)
            out[f"{cls.lower()}_{metric}_ap_r11"] = ap_r11(precision)
    return out
