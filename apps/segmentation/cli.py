"""``tessera segmentation`` (also ``tessera-segmentation``): fit | validate | test | predict
| synth | evaluate.

Models and data are picked by class in the config (``model.class_path``:
``SemanticSegmentation`` or ``ReferringSegmentation``; ``data.class_path``:
``SemanticDataModule`` or ``GroundingDataModule``), see ``apps/segmentation/configs/``.

``evaluate`` scores a checkpoint on a split with the data settings recorded in it and the
same predictions as ``test`` (original resolution, see
:meth:`~tessera.apps.segmentation.module.SegmentationTask.predict_items`). Semantic:
``miou``, ``mdice`` (mmseg ``IoUMetric``) and per-class ``iou_<name>``; grounding: GRES
``giou``, ``ciou``, ``prec_at_0.5..0.9``, ``n_acc``, ``t_acc`` and the control
``giou_unrelated_text``: every question replaced by a question about a different image, which
must score much lower if the text is used (left out for a split of a single image).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from tessera.apps.common.cli import AppCommands, EvaluateRequest, run_app
from tessera.apps.segmentation.api import load_module
from tessera.apps.segmentation.metrics import GroundingIoU, SemanticIoU
from tessera.apps.segmentation.module import SegmentationTask
from tessera.datamodules.common import is_empty_batch
from tessera.datamodules.segmentation.datamodule import (
    GroundingDataModule,
    SegmentationDataModule,
    SemanticDataModule,
)
from tessera.datamodules.segmentation.synth import main as synth_main

SEMANTIC_DATA_KEYS = (
    "layout",
    "num_classes",
    "class_names",
    "ignore_index",
    "reduce_zero_label",
    "label_map",
    "binary",
    "img_suffix",
    "seg_map_suffix",
    "scale",
    "size",
)
GROUNDING_DATA_KEYS = ("format", "refcoco_dataset", "split_by", "image_root", "size")


def _grounding_root(data: Path, fmt: str) -> Path:
    """A synthetic world (``world.json``) holds the layouts in ``grounding/`` and
    ``refcoco/``; accept its root too."""
    if not (data / "world.json").is_file():
        return data
    return data / ("grounding" if fmt == "vizwiz" else "refcoco")


def _image_key(path: Path) -> tuple:
    """Identity of an image file: hard links and copies under other names count as one."""
    try:
        st = os.stat(path)
        return (st.st_dev, st.st_ino)
    except OSError:
        return (str(path),)


def unrelated_donors(items) -> list[int]:
    """For each item, the index of an item about a *different* image (the next image in
    path order, cycling; the k-th question of an image takes that image's k-th, modulo its
    count). Images are compared as files, so hard-linked copies are the same image.

    Raises:
        ValueError: fewer than two distinct images.
    """
    by_image: dict[tuple, list[int]] = {}
    for i, item in enumerate(items):
        by_image.setdefault(_image_key(item.image), []).append(i)
    images = sorted(by_image, key=lambda k: str(items[by_image[k][0]].image))
    if len(images) < 2:
        raise ValueError("the unrelated-question control needs at least two images")
    donors = [0] * len(items)
    for n, image in enumerate(images):
        other = by_image[images[(n + 1) % len(images)]]
        for k, i in enumerate(by_image[image]):
            donors[i] = other[k % len(other)]
    return donors


def distinct_images(items) -> int:
    return len({_image_key(item.image) for item in items})


@torch.no_grad()
def evaluate_semantic(module, datamodule, split: str) -> dict[str, float]:
    metric = SemanticIoU(module.hparams.num_classes, module.ignore_index)
    for batch in datamodule._loader(datamodule.build(split, False, datamodule.on_error)):
        module.update_metric(metric, batch)
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
        items = datamodule.items(split)
        donors = unrelated_donors(items)
        kwargs["text_transform"] = lambda i, _: items[donors[i]].text
    loader = datamodule._loader(datamodule.build(split, False, datamodule.on_error, **kwargs))
    for batch in loader:
        module.update_metric(metric, batch)
    return {k: float(v) for k, v in metric.compute().items()}


@torch.no_grad()
def calibrate_grounding(
    module,
    datamodule,
    split: str = "val",
    thresholds=(0.3, 0.4, 0.5, 0.6, 0.7),
    min_areas=(0, 8, 16, 24, 32, 48, 64),
) -> dict[str, float]:
    """Pick ``threshold`` and ``min_area`` maximising gIoU on ``split`` (scored at the original
    resolution, as ``evaluate``); sets them on ``module``."""
    outputs = []
    for batch in datamodule._loader(datamodule.build(split, False, datamodule.on_error)):
        if not is_empty_batch(batch):
            small, full = module.probabilities(batch)
            outputs.append((small.cpu(), [f.cpu() for f in full], batch["target"]))
    scores = {}
    for threshold in thresholds:
        for min_area in min_areas:
            module.threshold, module.min_area = threshold, min_area
            metric = GroundingIoU()
            for small, full, targets in outputs:
                for mask, target in zip(module.masks(small, full), targets, strict=True):
                    metric.update(mask[None], target[None])
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
    if distinct_images(datamodule.items(request.split)) > 1:
        control = evaluate_grounding(module, datamodule, request.split, unrelated_text=True)
        metrics["giou_unrelated_text"] = control["giou"]
    return metrics


COMMANDS = AppCommands(
    task="segmentation",
    model_class=SegmentationTask,
    datamodule_class=SegmentationDataModule,
    synth=synth_main,
    evaluate=evaluate,
    cli_kwargs={"subclass_mode_model": True, "subclass_mode_data": True},
)


def main(argv: list[str] | None = None) -> int:
    return run_app(COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
