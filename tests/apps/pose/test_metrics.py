"""Metrics against pycocotools and hand-computed cases."""

import json

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from tessera.apps.pose import metrics
from tessera.apps.pose.decoding import flip_back
from tessera.datamodules.pose.codecs import MSRAHeatmap
from tessera.datamodules.pose.skeleton import COCO_SIGMAS


def _gt_file(tmp_path, n=6, area=900.0):
    rng = np.random.default_rng(1)
    images, anns = [], []
    for i in range(n):
        xy = rng.uniform(10, 60, (17, 2))
        kp = np.concatenate([xy, np.full((17, 1), 2)], 1).ravel().tolist()
        images.append({"id": i + 1, "file_name": f"{i + 1:012d}.jpg", "width": 80, "height": 80})
        anns.append(
            {
                "id": i + 1,
                "image_id": i + 1,
                "category_id": 1,
                "keypoints": kp,
                "num_keypoints": 17,
                "area": area,
                "iscrowd": 0,
                "bbox": [5, 5, 60, 60],
            }
        )
    cats = [{"id": 1, "name": "person", "keypoints": [str(k) for k in range(17)], "skeleton": []}]
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path, anns


def _shift_for_oks(oks: float, area: float) -> np.ndarray:
    """Per-joint displacement giving every joint exp(-e) = oks (so the instance OKS = oks)."""
    var = (2 * COCO_SIGMAS) ** 2
    return np.sqrt(-np.log(oks) * 2 * area * var)


def test_known_oks_gives_known_ap(tmp_path):
    path, anns = _gt_file(tmp_path)
    results = []
    for ann in anns:
        kp = np.asarray(ann["keypoints"], float).reshape(17, 3)
        kp[:, 0] += _shift_for_oks(0.72, ann["area"])
        kp[:, 2] = 1.0
        results.append(
            {
                "image_id": ann["image_id"],
                "category_id": 1,
                "keypoints": kp.ravel().tolist(),
                "score": 0.9,
            }
        )
    values = metrics.coco_keypoint_ap(path, results)
    # OKS 0.72 passes thresholds .50 .55 .60 .65 .70 of the ten: AP = 0.5, AP50 = 1.
    assert values["oks_ap"] == pytest.approx(0.5, abs=1e-6)
    assert values["oks_ap50"] == pytest.approx(1.0) and values["oks_ap75"] == 0.0
    assert metrics.coco_keypoint_ap(path, []) == dict.fromkeys(metrics.STAT_KEYS, 0.0)


def test_oks_matches_pycocotools(tmp_path):
    path, anns = _gt_file(tmp_path, n=1)
    rng = np.random.default_rng(2)
    g = np.asarray(anns[0]["keypoints"], float).reshape(17, 3)
    d = g.copy()
    d[:, :2] += rng.normal(0, 3, (17, 2))
    gt = COCO(str(path))
    ev = COCOeval(
        gt,
        gt.loadRes(
            [{"image_id": 1, "category_id": 1, "keypoints": d.ravel().tolist(), "score": 1.0}]
        ),
        "keypoints",
    )
    ev.params.imgIds = [1]
    ev.evaluate()
    reference = ev.computeOks(1, 1)[0, 0]
    # pycocotools uses the GT area alone: pass it as both areas
    ours = metrics.oks_iou(g, d[None], anns[0]["area"], np.array([anns[0]["area"]]))[0]
    assert ours == pytest.approx(reference, rel=1e-9)


def test_oks_nms_and_rescoring():
    base = np.concatenate([np.random.default_rng(3).uniform(0, 50, (17, 2)), np.ones((17, 1))], 1)
    near = base.copy()
    near[:, 0] += 0.1
    far = base.copy()
    far[:, 0] += 40
    insts = [
        {"keypoints": near, "score": 0.5, "area": 2500.0},
        {"keypoints": base, "score": 0.9, "area": 2500.0},
        {"keypoints": far, "score": 0.7, "area": 2500.0},
    ]
    assert metrics.oks_nms(insts, 0.9) == [1, 2]  # the near duplicate is suppressed
    scores = np.array([0.9] * 10 + [0.1] * 7)
    assert metrics.rescore(scores, 0.5) == pytest.approx(0.45)  # mean of scores > 0.2
    assert metrics.rescore(np.full(17, 0.1), 0.5) == 0.0


def test_pck_and_epe_by_hand():
    gt = np.zeros((2, 3, 2))
    pred = gt.copy()
    pred[0, 0] = [3, 4]  # distance 5
    pred[1, 1] = [30, 40]  # distance 50
    mask = np.array([[True, True, False], [True, True, True]])
    norm = np.array([100.0, 100.0])
    # normalised errors: j0 (0.05, 0), j1 (0, 0.5), j2 (-, 0); per-joint PCK then the mean
    assert metrics.pck_accuracy(pred, gt, mask, norm, 0.2) == pytest.approx((1 + 0.5 + 1) / 3)
    assert metrics.pck_accuracy(pred, gt, mask, norm, 0.04) == pytest.approx((0.5 + 0.5 + 1) / 3)
    assert metrics.epe(pred, gt, mask) == pytest.approx(55 / 5)


def test_mpjpe_family():
    rng = np.random.default_rng(4)
    target = rng.normal(size=(5, 17, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    moved = 1.7 * target @ q.T + np.array([0.3, -1.0, 2.0])
    assert np.allclose(metrics.p_mpjpe(moved, target), 0, atol=1e-9)
    t = torch.from_numpy(target)
    assert torch.allclose(metrics.n_mpjpe(2.5 * t, t), torch.zeros(5, dtype=t.dtype), atol=1e-9)
    shifted = t.clone()
    shifted[:, :, 0] += 0.003  # every joint 3 mm off
    assert torch.allclose(
        metrics.mpjpe(shifted * 1000, t * 1000), torch.full((5,), 3.0, dtype=t.dtype)
    )
    report = metrics.lifting_report(shifted.numpy(), target, ["Walking 1"] * 3 + ["Sitting"] * 2)
    assert set(report["per_action"]) == {"Walking", "Sitting"}
    assert (
        report["mpjpe_mm"] == pytest.approx(3.0) and report["per_action"]["Walking"]["frames"] == 3
    )


def test_flip_test_shift_recovers_the_flip_offset():
    codec = MSRAHeatmap((192, 256), (48, 64), 2, unbiased=True)
    x = np.array([[81.0, 100.0]])
    hm, _ = codec.encode(np.repeat(x, 17, 0), np.ones(17))
    mirrored, _ = codec.encode(np.repeat([[191 - x[0, 0], 100.0]], 17, 0), np.ones(17))
    t = torch.from_numpy(mirrored)[None]
    errors = {}
    for shift in (False, True):
        back = flip_back(t, shift)[0].numpy()
        errors[shift] = abs(codec.decode(back)[0][0, 0] - x[0, 0])
    assert errors[True] < errors[False]


def _mmpose_coco_metric(annotation_file, predictions, nms_thr=0.9, kpt_thr=0.2) -> list[float]:
    """mmpose's ``CocoMetric.compute_metrics`` (score_mode ``bbox_keypoint``, nms_mode
    ``oks_nms``) re-written from its definition for this test: group by image, one instance
    per sample id, score = box score x mean keypoint score above ``kpt_thr``, greedy OKS-NMS
    with the mean of the two areas, then ``COCOeval(iouType="keypoints")``. (mmpose scores
    with xtcocotools, whose keypoint evaluation with ``use_area=True`` and the COCO sigmas is
    pycocotools'.)"""
    var = (2 * COCO_SIGMAS) ** 2
    per_image = {}
    for p in predictions:
        per_image.setdefault(p["image_id"], {})[p["item_id"]] = p
    results = []
    for image_id, by_id in per_image.items():
        insts = [by_id[k] for k in sorted(by_id)]
        scores = []
        for p in insts:
            confident = [s for s in p["keypoint_scores"] if s > kpt_thr]
            scores.append(p["bbox_score"] * (sum(confident) / len(confident) if confident else 0))
        order = list(np.argsort(scores)[::-1])
        keep = []
        while order:
            i, rest = order[0], order[1:]
            keep.append(i)
            survivors = []
            for j in rest:
                d2 = ((np.asarray(insts[i]["keypoints"]) - insts[j]["keypoints"]) ** 2).sum(1)
                mean_area = (insts[i]["area"] + insts[j]["area"]) / 2 + np.spacing(1)
                if np.exp(-d2 / var / mean_area / 2).mean() <= nms_thr:
                    survivors.append(j)
            order = survivors
        for i in keep:
            xy = np.asarray(insts[i]["keypoints"], float)
            kp = np.concatenate([xy, np.asarray(insts[i]["keypoint_scores"])[:, None]], 1)
            result = {"image_id": image_id, "category_id": 1, "keypoints": kp.ravel().tolist()}
            results.append(result | {"score": float(scores[i])})
    gt = COCO(str(annotation_file))
    ev = COCOeval(gt, gt.loadRes(results), "keypoints")
    ev.params.useSegm = None
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return [max(0.0, float(v)) for v in ev.stats]


def test_evaluation_matches_mmpose_coco_metric(tmp_path):
    """The full post-processing (rescoring, OKS-NMS, de-duplication of samples a distributed
    sampler repeats) and scoring give mmpose's ``CocoMetric`` numbers on predictions of
    varied quality: near-duplicates NMS must remove, far false positives, low keypoint
    scores below the 0.2 threshold, and a repeated sample id."""
    path, anns = _gt_file(tmp_path, n=8)
    rng = np.random.default_rng(7)
    predictions = []
    for a in anns:
        gt = np.asarray(a["keypoints"], float).reshape(17, 3)[:, :2]
        good = gt + rng.normal(0, 2.0, (17, 2))
        copies = {"good": good, "near": good + rng.normal(0, 0.3, (17, 2)),
                  "poor": gt + rng.normal(0, 9.0, (17, 2))}  # fmt: skip
        for name, xy in copies.items():
            predictions.append({"image_id": a["image_id"], "item_id": f"{a['id']}-{name}",
                                "keypoints": xy, "keypoint_scores": rng.uniform(0.0, 1.0, 17),
                                "bbox_score": float(rng.uniform(0.3, 1.0)),
                                "area": float(rng.uniform(700, 1100))})  # fmt: skip
    predictions.append(dict(predictions[0]))  # the same sample twice (DDP padding)
    ours = metrics.coco_keypoint_ap(path, metrics.coco_results(predictions))
    reference = _mmpose_coco_metric(path, predictions)
    assert [ours[k] for k in metrics.STAT_KEYS] == pytest.approx(reference, abs=1e-12)
    assert 0.05 < ours["oks_ap"] < 0.95  # a case where rescoring and NMS change the AP
    no_nms = metrics.coco_keypoint_ap(path, metrics.coco_results(predictions, None))
    assert no_nms["oks_ap"] != ours["oks_ap"]
