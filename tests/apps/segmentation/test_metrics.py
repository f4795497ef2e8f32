"""Metrics vs an independent numpy brute force (mmseg / GRES / LAVT definitions) and
torchmetrics on the same predictions; empty-mask policy."""

import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassF1Score, MulticlassJaccardIndex

from tessera.apps.segmentation.metrics import GroundingIoU, SemanticIoU


def _brute_miou(preds, targets, k, ignore):
    """Per-pixel loops over the dataset, nan-mean over classes with a non-empty union."""
    inter, union, area_p, area_l = (np.zeros(k) for _ in range(4))
    for pred, target in zip(preds, targets, strict=True):
        for p, t in zip(pred.ravel(), target.ravel(), strict=True):
            if t == ignore:
                continue
            area_p[p] += 1
            area_l[t] += 1
            if p == t:
                inter[p] += 1
    union = area_p + area_l - inter
    iou = [inter[c] / union[c] for c in range(k) if union[c] > 0]
    dice = [2 * inter[c] / (area_p[c] + area_l[c]) for c in range(k) if union[c] > 0]
    return np.mean(iou), np.mean(dice), inter, union


def _dataset(seed=0, k=5, absent=3):
    g = torch.Generator().manual_seed(seed)
    preds, targets = [], []
    for _ in range(3):
        t = torch.randint(0, k, (2, 9, 7), generator=g)
        p = torch.where(torch.rand(t.shape, generator=g) < 0.6, t, torch.randint(0, k, t.shape))
        t[torch.rand(t.shape, generator=g) < 0.1] = 255
        p[p == absent], t[t == absent] = 0, 0  # class `absent` occurs nowhere -> NaN, left out
        preds.append(p)
        targets.append(t)
    return preds, targets


def test_semantic_matches_numpy_brute_force():
    preds, targets = _dataset()
    metric = SemanticIoU(5)
    for p, t in zip(preds, targets, strict=True):
        metric.update(p, t)
    out = metric.compute()
    miou, mdice, inter, union = _brute_miou(
        [p.numpy() for p in preds], [t.numpy() for t in targets], 5, 255
    )
    assert torch.isnan(out["iou"][3])
    assert out["miou"].item() == pytest.approx(miou, abs=1e-12)
    assert out["mdice"].item() == pytest.approx(mdice, abs=1e-12)
    np.testing.assert_allclose(metric.area_intersect.numpy(), inter)
    np.testing.assert_allclose(metric.area_union.numpy(), union)


def test_semantic_matches_torchmetrics_on_present_classes():
    preds, targets = _dataset(seed=1)
    ours = SemanticIoU(5)
    jaccard = MulticlassJaccardIndex(5, average=None, ignore_index=255)
    f1 = MulticlassF1Score(5, average=None, ignore_index=255, multidim_average="global")
    for p, t in zip(preds, targets, strict=True):
        ours.update(p, t)
        jaccard.update(p, t)
        f1.update(p, t)
    out = ours.compute()
    present = ~torch.isnan(out["iou"])
    torch.testing.assert_close(out["iou"][present].float(), jaccard.compute()[present])
    torch.testing.assert_close(out["dice"][present].float(), f1.compute()[present])


def test_semantic_is_dataset_level_not_mean_of_images():
    """A tiny image with a wrong prediction must not weigh as much as a big correct one."""
    metric = SemanticIoU(2)
    big = torch.ones(1, 10, 10, dtype=torch.long)
    metric.update(big, big)
    metric.update(torch.zeros(1, 1, 1, dtype=torch.long), torch.ones(1, 1, 1, dtype=torch.long))
    assert metric.compute()["iou"][1].item() == pytest.approx(100 / 101)


def _gres_reference(preds, targets):
    """GRES (Liu, Ding & Jiang, CVPR 2023, Sec. 6 "Evaluation metrics"), per sample:
    a no-target sample is a true positive of the no-target decision when nothing is
    predicted (IoU 1) and a false negative otherwise (IoU 0, its predicted area in the cIoU
    union); a target sample predicted empty is a false positive (I = 0). gIoU averages
    per-sample IoU over all samples, cIoU = sum I / sum U, Pr@k counts target samples only,
    N-acc = TP / (TP + FN), T-acc = TN / (TN + FP)."""
    total = acc_iou = acc_i = acc_u = not_empty = 0
    nt = {"TP": 0, "TN": 0, "FP": 0, "FN": 0}
    pr = dict.fromkeys((0.5, 0.6, 0.7, 0.8, 0.9), 0)
    for p, t in zip(preds, targets, strict=True):
        keep = t != 255
        p, t = (p > 0) & keep, (t == 1) & keep
        inter, union = int((p & t).sum()), int((p | t).sum())
        predicted_empty = not p.any()
        if not t.any():
            if predicted_empty:
                nt["TP"] += 1
                acc_iou += 1
            else:
                nt["FN"] += 1
                acc_u += union
        else:
            if predicted_empty:
                nt["FP"] += 1
                inter = 0
            else:
                nt["TN"] += 1
            iou = inter / union
            acc_iou, acc_i, acc_u = acc_iou + iou, acc_i + inter, acc_u + union
            not_empty += 1
            for k in pr:
                pr[k] += iou >= k
        total += 1
    out = {"giou": acc_iou / total, "ciou": acc_i / acc_u}
    out |= {f"prec_at_{k}": v / not_empty for k, v in pr.items()}
    out["n_acc"] = nt["TP"] / (nt["TP"] + nt["FN"])
    out["t_acc"] = nt["TN"] / (nt["TN"] + nt["FP"])
    return out


def test_grounding_matches_the_gres_definitions():
    g = torch.Generator().manual_seed(0)
    target = (torch.rand(16, 8, 8, generator=g) < 0.3).long()
    target[:4] = 0  # no-target samples
    target[5, :2] = 255
    pred = torch.where(torch.rand(target.shape, generator=g) < 0.8, target == 1, target == 0)
    pred[0] = False  # no target, nothing predicted: the no-target decision is right
    pred[1] = False
    pred[6] = False  # a target sample predicted empty: false positive
    metric = GroundingIoU()
    metric.update(pred[:7], target[:7])
    metric.update(pred[7:], target[7:])
    out = metric.compute()
    ref = _gres_reference(pred.numpy(), target.numpy())
    assert set(ref) <= set(out)
    for key, value in ref.items():
        assert out[key].item() == pytest.approx(value, abs=1e-12), key
    assert out["n_acc"].item() == pytest.approx(2 / 4)
    assert out["t_acc"].item() == pytest.approx(11 / 12)


def test_precision_counts_target_samples_only():
    """Many correctly-empty no-target samples must not inflate Pr@k (they do in gIoU)."""
    metric = GroundingIoU()
    target = torch.zeros(4, 2, 2, dtype=torch.long)
    target[0, 0, 0] = 1
    pred = torch.zeros(4, 2, 2, dtype=torch.bool)  # the one target is missed
    metric.update(pred, target)
    out = metric.compute()
    assert out["prec_at_0.5"].item() == 0.0 and out["giou"].item() == pytest.approx(3 / 4)
    assert out["n_acc"].item() == 1.0 and out["t_acc"].item() == 0.0


@pytest.mark.parametrize(
    ("pred", "target", "iou"),
    [
        ([0, 0, 0, 0], [0, 0, 0, 0], 1.0),  # empty target, empty prediction: correct
        ([1, 0, 0, 0], [0, 0, 0, 0], 0.0),  # empty target, something predicted
        ([0, 0, 0, 0], [1, 1, 0, 0], 0.0),  # target missed
        ([1, 1, 0, 0], [1, 0, 0, 0], 0.5),
        ([1, 0, 0, 0], [255, 0, 0, 0], 1.0),  # padding counts nowhere: nothing predicted
    ],
)
def test_empty_mask_policy(pred, target, iou):
    metric = GroundingIoU()
    metric.update(torch.tensor([pred]).bool(), torch.tensor([target]))
    out = metric.compute()
    assert out["giou"].item() == pytest.approx(iou)
    if 1 in target:
        assert out["prec_at_0.5"].item() == float(iou >= 0.5)


def test_ciou_is_one_when_every_union_is_empty():
    metric = GroundingIoU()
    metric.update(torch.zeros(2, 3, 3, dtype=torch.bool), torch.zeros(2, 3, 3, dtype=torch.long))
    assert metric.compute()["ciou"].item() == 1.0
