"""Pose metrics: COCO OKS AP/AR through pycocotools (with mmpose's rescoring and OKS-NMS),
PCK / EPE, and MPJPE / P-MPJPE / N-MPJPE in millimetres (VideoPose3D's protocols #1/#2).

Definitions (reference implementations named where they live):
- OKS between a ground truth g and a prediction d (``pycocotools.cocoeval``; mmpose
  ``oks_iou``): ``e_k = d_k² / (2 s² (2σ_k)²)``, OKS = mean over labelled k of ``exp(-e_k)``.
- mmpose ``CocoMetric`` (score_mode ``bbox_keypoint``, keypoint_score_thr 0.2, nms ``oks_nms``
  0.9): instance score = box score × mean of keypoint scores above 0.2; per image, greedy NMS
  dropping instances with OKS > 0.9 to a higher-scored one (area = product of the padded,
  aspect-fixed box scale); then ``COCOeval(iouType="keypoints")`` on the whole annotation
  file.
- PCK@t (mmpose ``keypoint_pck_accuracy``, ``norm_item="bbox"``): a joint is correct when
  its error over the box's longer side is below t; averaged per joint, then over joints
  with labels. EPE: mean pixel error over labelled joints.
- MPJPE: mean Euclidean joint error; P-MPJPE after the similarity (scale, rotation,
  translation) Procrustes alignment of each pose; N-MPJPE after the least-squares scale
  only (VideoPose3D ``common/loss.py``).
"""

from __future__ import annotations

import contextlib
import io
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from tessera.datamodules.pose.skeleton import COCO_SIGMAS

STAT_KEYS = (
    "oks_ap",
    "oks_ap50",
    "oks_ap75",
    "oks_ap_m",
    "oks_ap_l",
    "oks_ar",
    "oks_ar50",
    "oks_ar75",
    "oks_ar_m",
    "oks_ar_l",
)


def oks_iou(
    g: np.ndarray,
    d: np.ndarray,
    area_g: float,
    area_d: np.ndarray,
    sigmas=COCO_SIGMAS,
    vis_thr: float | None = None,
) -> np.ndarray:
    """OKS of one instance ``g (K, 3)`` to ``d (N, K, 3)`` with the mean of the two areas
    (mmpose's ``oks_iou``)."""
    var = (2 * np.asarray(sigmas)) ** 2
    out = np.zeros(len(d))
    for n in range(len(d)):
        dist2 = ((d[n, :, :2] - g[:, :2]) ** 2).sum(-1)
        e = dist2 / var / ((area_g + area_d[n]) / 2 + np.spacing(1)) / 2
        if vis_thr is not None:
            e = e[(g[:, 2] > vis_thr) & (d[n, :, 2] > vis_thr)]
        out[n] = np.exp(-e).mean() if len(e) else 0.0
    return out


def oks_nms(instances: list[dict], threshold: float = 0.9, sigmas=COCO_SIGMAS) -> list[int]:
    """Greedy OKS-NMS: indices kept, highest score first (``keypoints (K, 3)``, ``score``,
    ``area`` per instance)."""
    if not instances:
        return []
    scores = np.array([i["score"] for i in instances])
    kpts = np.stack([i["keypoints"] for i in instances])
    areas = np.array([i["area"] for i in instances])
    order = scores.argsort()[::-1]
    keep = []
    while len(order):
        top = order[0]
        keep.append(int(top))
        overlap = oks_iou(kpts[top], kpts[order[1:]], areas[top], areas[order[1:]], sigmas)
        order = order[1:][overlap <= threshold]
    return keep


def rescore(keypoint_scores: np.ndarray, bbox_score: float, threshold: float = 0.2) -> float:
    """mmpose's ``bbox_keypoint`` score: box score × mean of the confident keypoint scores."""
    confident = keypoint_scores[keypoint_scores > threshold]
    return float(bbox_score * (confident.mean() if len(confident) else 0.0))


def coco_results(
    predictions: list[dict], nms_threshold: float | None = 0.9, keypoint_score_thr: float = 0.2
) -> list[dict]:
    """Rescored, NMS-filtered COCO results ``[{image_id, category_id, keypoints, score}]``.

    Each prediction: ``image_id``, ``keypoints (17, 2)`` image pixels, ``keypoint_scores
    (17,)``, ``bbox_score``, ``area``, and a unique ``item_id`` (duplicates, e.g. repeated by
    a distributed sampler, are counted once).
    """
    per_image: dict[int, dict[str, dict]] = defaultdict(dict)
    for p in predictions:
        per_image[int(p["image_id"])][p["item_id"]] = p
    out = []
    for image_id in sorted(per_image):
        insts = []
        for item_id in sorted(per_image[image_id]):
            p = per_image[image_id][item_id]
            kp = np.concatenate(
                [
                    np.asarray(p["keypoints"], float),
                    np.asarray(p["keypoint_scores"], float)[:, None],
                ],
                1,
            )
            score = rescore(
                np.asarray(p["keypoint_scores"]), float(p["bbox_score"]), keypoint_score_thr
            )
            insts.append({"keypoints": kp, "score": score, "area": float(p["area"])})
        keep = range(len(insts)) if nms_threshold is None else oks_nms(insts, nms_threshold)
        for k in keep:
            out.append(
                {
                    "image_id": image_id,
                    "category_id": 1,
                    "keypoints": insts[k]["keypoints"].ravel().tolist(),
                    "score": insts[k]["score"],
                }
            )
    return out


def coco_keypoint_ap(annotation_file: str | Path, results: list[dict]) -> dict[str, float]:
    """``COCOeval(iouType="keypoints")`` over the whole annotation file → ``oks_ap`` etc.

    No results scores 0 (pycocotools cannot load an empty list)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not results:
        return dict.fromkeys(STAT_KEYS, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(annotation_file))
        dt = gt.loadRes(json.loads(json.dumps(results)))
        ev = COCOeval(gt, dt, "keypoints")
        ev.params.useSegm = None
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # pycocotools reports -1 where no ground truth exists in an area range.
    return {k: max(0.0, float(v)) for k, v in zip(STAT_KEYS, ev.stats, strict=True)}


def pck_accuracy(
    pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, norm: np.ndarray, thr: float
) -> float:
    """PCK: ``pred, gt (N, K, 2)``, ``mask (N, K)`` labelled, ``norm (N,)`` box longer side."""
    dist = np.linalg.norm(pred - gt, axis=-1) / np.maximum(norm[:, None], 1e-6)
    per_joint = []
    for k in range(pred.shape[1]):
        m = mask[:, k]
        if m.any():
            per_joint.append(float((dist[m, k] < thr).mean()))
    return float(np.mean(per_joint)) if per_joint else 0.0


def epe(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> float:
    """Mean end-point error (pixels) over labelled joints."""
    d = np.linalg.norm(pred - gt, axis=-1)
    return float(d[mask].mean()) if mask.any() else 0.0


def mpjpe(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pose mean joint error ``(N,)`` for ``(N, J, 3)`` (units of the input)."""
    return (pred - target).norm(dim=-1).mean(dim=-1)


def n_mpjpe(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MPJPE after the per-pose least-squares scale ``s = <p, t> / <p, p>``."""
    s = (pred * target).sum(dim=(-1, -2), keepdim=True) / (pred * pred).sum(
        dim=(-1, -2), keepdim=True
    ).clamp_min(1e-12)
    return mpjpe(s * pred, target)


def procrustes_align(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Similarity-align each ``pred (N, J, 3)`` to ``target`` (Umeyama / orthogonal
    Procrustes with reflection removed)."""
    mu_p, mu_t = pred.mean(1, keepdims=True), target.mean(1, keepdims=True)
    p, t = pred - mu_p, target - mu_t
    norm_p = np.linalg.norm(p, axis=(1, 2), keepdims=True).clip(1e-12)
    norm_t = np.linalg.norm(t, axis=(1, 2), keepdims=True).clip(1e-12)
    p, t = p / norm_p, t / norm_t
    u, s, vt = np.linalg.svd(np.einsum("nji,njk->nik", t, p))
    v = vt.transpose(0, 2, 1)
    rot = v @ u.transpose(0, 2, 1)
    flip = np.sign(np.linalg.det(rot))  # no reflections
    v[:, :, -1] *= flip[:, None]
    s[:, -1] *= flip
    rot = v @ u.transpose(0, 2, 1)
    scale = (s.sum(-1) * (norm_t[:, 0, 0] / norm_p[:, 0, 0]))[:, None, None]
    return scale * (pred - mu_p) @ rot + mu_t


def p_mpjpe(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-pose MPJPE after Procrustes alignment ``(N,)``."""
    aligned = procrustes_align(np.asarray(pred, np.float64), np.asarray(target, np.float64))
    return np.linalg.norm(aligned - target, axis=-1).mean(-1)


def lifting_report(pred_m: np.ndarray, target_m: np.ndarray, actions: list[str]) -> dict:
    """Protocol #1/#2 in mm as VideoPose3D reports them: per action (takes grouped by the
    first word, errors averaged over frames), and the mean over actions.

    Returns ``{"mpjpe_mm", "p_mpjpe_mm", "n_mpjpe_mm", "mpjpe_mm_frames", "per_action":
    {action: {...}}}``.
    """
    pred = torch.as_tensor(pred_m, dtype=torch.float64) * 1000
    target = torch.as_tensor(target_m, dtype=torch.float64) * 1000
    e1 = mpjpe(pred, target).numpy()
    e2 = p_mpjpe(pred.numpy(), target.numpy())
    e3 = n_mpjpe(pred, target).numpy()
    groups: dict[str, list[int]] = defaultdict(list)
    for i, a in enumerate(actions):
        groups[a.split(" ")[0]].append(i)
    per_action = {
        a: {
            "mpjpe_mm": float(e1[idx].mean()),
            "p_mpjpe_mm": float(e2[idx].mean()),
            "n_mpjpe_mm": float(e3[idx].mean()),
            "frames": len(idx),
        }
        for a, idx in sorted(groups.items())
    }
    mean = {
        k: float(np.mean([v[k] for v in per_action.values()]))
        for k in ("mpjpe_mm", "p_mpjpe_mm", "n_mpjpe_mm")
    }
    return mean | {"mpjpe_mm_frames": float(e1.mean()), "per_action": per_action}
