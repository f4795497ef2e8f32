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


def _brute_grounding(preds, targets):
    ious, i_sum, u_sum = [], 0, 0
    for p, t in zip(preds, targets, strict=True):
        keep = t != 255
        p, t = (p > 0) & keep, (t == 1) & keep
        i, u = (p & t).sum(), (p | t).sum()
        ious.append(1.0 if u == 0 else i / u)
        i_sum, u_sum = i_sum + i, u_sum + u
    ious = np.array(ious)
    out = {"giou": ious.mean(), "ciou": i_sum / u_sum}
    for k in (0.5, 0.6, 0.7, 0.8, 0.9):
        out[f"prec_at_{k}"] = (ious >= k).mean()
    return out


def test_grounding_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    target = (torch.rand(12, 8, 8, generator=g) < 0.3).long()
    target[:3] = 0  # no-target samples
    target[5, :2] = 255
    pred = torch.where(torch.rand(target.shape, generator=g) < 0.8, target == 1, target == 0)
    pred[0] = False  # empty target predicted empty -> 1
    metric = GroundingIoU()
    metric.update(pred[:7], target[:7])
    metric.update(pred[7:], target[7:])
    out = metric.compute()
    ref = _brute_grounding(pred.numpy(), target.numpy())
    for key, value in ref.items():
        assert out[key].item() == pytest.approx(value, abs=1e-12), key
    assert out["n_acc"].item() == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("pred", "target", "iou"),
    [
        ([0, 0, 0, 0], [0, 0, 0, 0], 1.0),  # empty target, empty prediction: correct
        ([1, 0, 0, 0], [0, 0, 0, 0], 0.0),  # empty target, something predicted
        ([0, 0, 0, 0], [1, 1, 0, 0], 0.0),  # target missed
        ([1, 1, 0, 0], [1, 0, 0, 0], 0.5),
        ([1, 0, 0, 0], [255, 0, 0, 0], 1.0),  # padding counts nowhere
    ],
)
def test_empty_mask_policy(pred, target, iou):
    metric = GroundingIoU()
    metric.update(torch.tensor([pred]).bool(), torch.tensor([target]))
    out = metric.compute()
    assert out["giou"].item() == pytest.approx(iou)
    assert out["prec_at_0.5"].item() == float(iou >= 0.5)


def test_ciou_is_one_when_every_union_is_empty():
    metric = GroundingIoU()
    metric.update(torch.zeros(2, 3, 3, dtype=torch.bool), torch.zeros(2, 3, 3, dtype=torch.long))
    assert metric.compute()["ciou"].item() == 1.0
