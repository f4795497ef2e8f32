"""``tessera segmentation evaluate``: score a checkpoint on a dataset split.

Semantic checkpoints report ``miou``, ``mdice`` (mmseg semantics) and per-class ``iou_<name>``;
grounding checkpoints report ``giou``, ``ciou``, ``prec_at_0.5..0.9``, ``n_acc`` and the
control ``giou_unrelated_text``: the same images with each question replaced by the question
of another image (rolled by one), which must score much lower if the text is used.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tessera.apps.common.cli import EvaluateRequest
from tessera.apps.segmentation.api import load_module
from tessera.apps.segmentation.metrics import GroundingIoU, SemanticIoU
from tessera.datamodules.common import is_empty_batch
from tessera.datamodules.segmentation.datamodule import GroundingDataModule, SemanticDataModule

SEMANTIC_DATA_KEYS = (
    "layout",
    "num_classes",
    "ignore_index",
    "reduce_zero_label",
    "mask_format",
    "img_suffix",
    "seg_map_suffix",
    "size",
)
GROUNDING_DATA_KEYS = ("format", "refcoco_dataset", "split_by", "image_root", "size")


def _grounding_root(data: Path, fmt: str) -> Path:
    """A world root holds the layouts in ``grounding/`` and ``refcoco/``; accept either."""
    sub = data / ("grounding" if fmt == "vizwiz" else "refcoco")
    return sub if sub.is_dir() else data


@torch.no_grad()
def evaluate_semantic(module, datamodule, split: str) -> dict[str, float]:
    metric = SemanticIoU(module.hparams.num_classes, module.ignore_index)
    loader = datamodule._loader(datamodule.build(split, False, datamodule.on_error))
    for batch in loader:
        if not is_empty_batch(batch):
            metric.update(module(batch["image"].to(module.device)).argmax(1).cpu(), batch["label"])
    out = metric.compute()
    metrics = {"miou": float(out["miou"]), "mdice": float(out["mdice"])}
    for name, iou in zip(module.class_names, out["iou"].tolist(), strict=True):
        metrics[f"iou_{name}"] = iou
    return metrics


@torch.no_grad()
def evaluate_grounding(
    module, datamodule, split: str, unrelated_text: bool = False
) -> dict[str, float]:
    metric = GroundingIoU()
    kwargs = {}
    if unrelated_text:
        texts = [item.text for item in datamodule.items(split)]
        kwargs["text_transform"] = lambda i, _: texts[(i + 1) % len(texts)]
    loader = datamodule._loader(datamodule.build(split, False, datamodule.on_error, **kwargs))
    for batch in loader:
        if not is_empty_batch(batch):
            pred = module.predict_mask(batch["image"].to(module.device), batch["text"])
            metric.update(pred.cpu(), batch["label"])
    return {k: float(v) for k, v in metric.compute().items()}


@torch.no_grad()
def calibrate_grounding(
    module,
    datamodule,
    split: str = "val",
    thresholds=(0.3, 0.4, 0.5, 0.6, 0.7),
    min_areas=(0, 8, 16, 24, 32, 48, 64),
) -> dict[str, float]:
    """Pick ``threshold`` and ``min_area`` maximising gIoU on ``split``; sets them on ``module``."""
    probs, labels = [], []
    for batch in datamodule._loader(datamodule.build(split, False, datamodule.on_error)):
        if not is_empty_batch(batch):
            logits = module(batch["image"].to(module.device), batch["text"])
            probs.append(torch.sigmoid(logits[:, 0]).cpu())
            labels.append(batch["label"])
    prob, label = torch.cat(probs), torch.cat(labels)
    scores = {}
    for threshold in thresholds:
        for min_area in min_areas:
            module.threshold, module.min_area = threshold, min_area
            metric = GroundingIoU()
            metric.update(module.binarize(prob), label)
            scores[(threshold, min_area)] = float(metric.compute()["giou"])
    (threshold, min_area), best = max(scores.items(), key=lambda kv: kv[1])
    module.threshold, module.min_area = threshold, min_area
    module.hparams.threshold, module.hparams.min_area = threshold, min_area
    return {"threshold": threshold, "min_area": min_area, "giou": best}


def evaluate(request: EvaluateRequest) -> dict[str, float]:
    module, data = load_module(request.checkpoint, request.device)
    common = dict(batch_size=request.batch_size, num_workers=request.num_workers)
    root = Path(request.data)
    if not root.exists():
        raise FileNotFoundError(f"{root}: data folder not found")
    if module.mode == "semantic":
        kwargs = {k: data[k] for k in SEMANTIC_DATA_KEYS if k in data}
        datamodule = SemanticDataModule(str(root), **kwargs, **common)
        return evaluate_semantic(module, datamodule, request.split)
    kwargs = {k: data[k] for k in GROUNDING_DATA_KEYS if k in data}
    root = _grounding_root(root, kwargs.get("format", "vizwiz"))
    datamodule = GroundingDataModule(str(root), **kwargs, **common)
    metrics = evaluate_grounding(module, datamodule, request.split)
    control = evaluate_grounding(module, datamodule, request.split, unrelated_text=True)
    metrics["giou_unrelated_text"] = control["giou"]
    return metrics
