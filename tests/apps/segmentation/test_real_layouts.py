"""fit (a few steps), evaluate and predict on every dataset layout as it ships (fixtures
from ``helpers.layouts.segmentation``), scored as mmseg / GRES score them: at the original
resolution, ``evaluate`` == ``test`` == the prediction summary == an independent numpy
implementation of mmseg's ``IoUMetric`` over the written masks."""

import json

import lightning as L
import numpy as np
import pytest
import yaml
from PIL import Image

from helpers.layouts import segmentation as layouts
from tessera.apps.common.cli import EvaluateRequest
from tessera.apps.segmentation.api import load_module
from tessera.apps.segmentation.cli import evaluate, main
from tessera.apps.segmentation.recipes import CONFIGS
from tessera.datamodules.segmentation import GroundingDataModule, SemanticDataModule

FAST = [
    "--trainer.max_steps=1",
    "--trainer.limit_train_batches=1",
    "--trainer.limit_val_batches=1",
    "--trainer.num_sanity_val_steps=0",
    "--trainer.enable_progress_bar=false",
    "--data.init_args.batch_size=2",
]


def _cityscapes_label(path):
    return path.parent / path.name.replace("_leftImg8bit.png", "_gtFine_labelTrainIds.png")


# layout: (writer, data options, classes, images of the val split, reference label decoder)
SEMANTIC = {
    "ade20k": (
        layouts.write_ade20k,
        {"layout": "ade20k", "scale": [48, 24], "size": 24},
        150,
        lambda root: sorted((root / "images" / "validation").glob("*.jpg")),
        lambda img: np.where(
            (v := _png(img.parents[2] / "annotations" / "validation" / f"{img.stem}.png")) == 0,
            255,
            v.astype(np.int64) - 1,
        ),
    ),
    "cityscapes": (
        layouts.write_cityscapes,
        {"layout": "cityscapes", "scale": [64, 32], "size": [16, 32]},
        19,
        lambda root: sorted((root / "leftImg8bit" / "val").glob("*/*_leftImg8bit.png")),
        lambda img: _png(
            img.parents[3] / "gtFine" / "val" / img.parent.name / _cityscapes_label(img).name
        ),
    ),
    "voc": (
        layouts.write_voc,
        {"layout": "voc", "size": 20},
        21,
        lambda root: [root / "JPEGImages" / f"{i}.jpg" for i in ("2007_000033", "2007_000042")],
        lambda img: _png(img.parents[1] / "SegmentationClass" / f"{img.stem}.png"),
    ),
    "mmseg": (
        layouts.write_mmseg_custom,
        {"layout": "mmseg", "num_classes": 3, "size": 24},
        3,
        lambda root: sorted((root / "img_dir" / "val").glob("*.jpg")),
        lambda img: _png(img.parents[2] / "ann_dir" / "val" / f"{img.stem}.png"),
    ),
    "isic": (
        layouts.write_isic,
        {"layout": "isic", "size": 20},
        2,
        lambda root: sorted((root / "ISIC2018_Task1-2_Validation_Input").glob("*.jpg")),
        lambda img: (
            _png(
                img.parents[1]
                / "ISIC2018_Task1_Validation_GroundTruth"
                / f"{img.stem}_segmentation.png"
            )
            // 255
        ),
    ),
}


def _png(path):
    return np.array(Image.open(path)).astype(np.int64)


def mmseg_iou_metric(preds, labels, num_classes, ignore_index=255):
    """mmseg ``IoUMetric``: per image ``intersect_and_union`` (histograms over
    ``[0, K-1]`` after dropping ``ignore_index``), summed over the dataset; nan-means."""
    total = np.zeros((4, num_classes))
    for pred, label in zip(preds, labels, strict=True):
        keep = label != ignore_index
        pred, label = pred[keep], label[keep]
        hist = lambda x: np.histogram(x, bins=num_classes, range=(0, num_classes - 1))[0]  # noqa: E731
        inter = hist(pred[pred == label])
        area_pred, area_label = hist(pred), hist(label)
        total += [inter, area_pred + area_label - inter, area_pred, area_label]
    inter, union, area_pred, area_label = total
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nanmean(inter / union), np.nanmean(2 * inter / (area_pred + area_label))


def _writer_config(tmp_path, out):
    config = tmp_path / "writer.yaml"
    writer = {
        "class_path": "tessera.apps.segmentation.writer.SegmentationWriter",
        "init_args": {"output_dir": str(out)},
    }
    config.write_text(
        yaml.safe_dump({"trainer": {"callbacks": [writer], "logger": False}, "seed_everything": 0})
    )
    return config


def _data_args(options: dict) -> list[str]:
    return [
        f"--data.init_args.{k}={v if isinstance(v, str) else json.dumps(v)}"
        for k, v in options.items()
    ]


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize("name", sorted(SEMANTIC))
def test_semantic_layout_fit_evaluate_predict(name, tmp_path, capsys):
    writer, options, classes, val_images, reference = SEMANTIC[name]
    root = writer(tmp_path / "data")
    config = str(CONFIGS / "semantic-tiny.yaml")
    model = [
        f"--model.init_args.num_classes={classes}",
        "--model.init_args.class_names=null",
        "--data.init_args.num_classes=null",
        "--data.init_args.reduce_zero_label=null",  # the layout's (True for ADE20K)
        "--data.init_args.predict_split=val",
    ]
    data = [f"--data.init_args.data_root={root}", *model, *_data_args(options)]
    assert main(["fit", "-c", config, *data, *FAST, f"--trainer.default_root_dir={tmp_path}"]) == 0
    ckpt = sorted(tmp_path.rglob("*.ckpt"))[-1]

    out = tmp_path / "pred"
    predict = ["predict", "-c", config, "-c", str(_writer_config(tmp_path, out))]
    assert (
        main([*predict, *data, f"--ckpt_path={ckpt}", "--trainer.enable_progress_bar=false"]) == 0
    )
    images = val_images(root)
    preds, labels = [], []
    for image in images:
        item_id = image.name.replace("_leftImg8bit.png", "").rsplit(".", 1)[0]
        pred = _png(out / "pred" / f"{item_id}.png")
        assert pred.shape == _png(image).shape[:2]  # original size, not the network's
        if name == "isic":
            assert set(np.unique(pred)) <= {0, 255}  # binary dataset: 0/255 like its masks
            pred = pred // 255
        preds.append(pred)
        labels.append(reference(image))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["written"] == len(images)

    assert main(["evaluate", "--checkpoint", str(ckpt), "--data", str(root), "--split", "val"]) == 0
    metrics = _last_json(capsys)
    miou, mdice = mmseg_iou_metric(preds, labels, classes)
    assert metrics["miou"] == pytest.approx(miou, abs=1e-9)
    assert metrics["mdice"] == pytest.approx(mdice, abs=1e-9)
    assert summary["metrics"]["miou"] == pytest.approx(miou, abs=1e-9)
    if name == "ade20k":
        assert "iou_wall" in metrics and "iou_flag" in metrics  # the layout's class names


GROUNDING = {
    "vizwiz": (layouts.write_vizwiz, {"format": "vizwiz"}, "val", "test"),
    "refcoco": (layouts.write_refcoco, {"format": "refcoco"}, "testA", "testB"),
    "refcocog": (
        lambda root: layouts.write_refcoco(root, "refcocog", "umd"),
        {"format": "refcoco", "refcoco_dataset": "refcocog", "split_by": "umd"},
        "test",
        "val",
    ),
    "grefcoco": (layouts.write_grefcoco, {"format": "grefcoco"}, "val", "testB"),
}


@pytest.mark.parametrize("name", sorted(GROUNDING))
def test_grounding_layout_fit_evaluate_predict(name, tmp_path, capsys):
    writer, options, eval_split, predict_split = GROUNDING[name]
    root = writer(tmp_path / "data")
    config = str(CONFIGS / "grounding-tiny.yaml")
    data = [
        f"--data.init_args.data_root={root}",
        *_data_args({**options, "size": 32, "predict_split": predict_split}),
    ]
    fit = ["fit", "-c", config, *data, *FAST, f"--trainer.default_root_dir={tmp_path}"]
    assert main(fit) == 0
    ckpt = sorted(tmp_path.rglob("*.ckpt"))[-1]
    out = tmp_path / "pred"
    predict = ["predict", "-c", config, "-c", str(_writer_config(tmp_path, out)), *data]
    assert main([*predict, f"--ckpt_path={ckpt}", "--trainer.enable_progress_bar=false"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    module, recorded = load_module(ckpt)
    dm = GroundingDataModule(str(root), **{k: recorded[k] for k in options}, size=32)
    items = dm.items(predict_split, require_masks=False)
    assert summary["written"] == len(items) > 0
    for item in items:
        mask = _png(out / "pred" / f"{item.item_id}.png")
        assert mask.shape == _png(item.image).shape[:2] and set(np.unique(mask)) <= {0, 255}
    if name == "vizwiz":
        assert summary["metrics"] == {}  # the test split ships without masks

    argv = ["evaluate", "--checkpoint", str(ckpt), "--data", str(root), "--split", eval_split]
    assert main(argv) == 0
    metrics = _last_json(capsys)
    assert 0 <= metrics["giou"] <= 1 and 0 <= metrics["giou_unrelated_text"] <= 1
    assert ("n_acc" in metrics) == (name == "grefcoco")  # only gRefCOCO has no-target refs
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    dm.splits["test"] = eval_split
    tested = trainer.test(module, datamodule=dm, verbose=False)[0]
    for key in ("giou", "ciou", "prec_at_0.5"):
        assert tested[f"test/{key}"] == pytest.approx(metrics[key], abs=1e-6), key


def test_semantic_evaluate_equals_test_with_slide_inference(tmp_path):
    """Cityscapes-shaped (2:1) images, keep-ratio resize, sliding windows: ``evaluate``,
    ``test`` and the prediction path give the same numbers."""
    root = layouts.write_cityscapes(tmp_path / "data", size=(24, 48))
    from tessera.apps.segmentation.api import export
    from tessera.apps.segmentation.module import SemanticSegmentation

    module = SemanticSegmentation(
        19, backbone="test_efficientnet", decoder_dim=16, out_indices=(1, 2, 3),
        inference="slide", test_crop=(16, 16), test_stride=(12, 12),
    ).eval()  # fmt: skip
    data = {"layout": "cityscapes", "scale": [36, 18], "size": 16}
    path = export(module, tmp_path / "m.safetensors", data)
    metrics = evaluate(EvaluateRequest(checkpoint=str(path), data=str(root), split="val"))
    dm = SemanticDataModule(str(root), **data, batch_size=2, test_split="val")
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    tested = trainer.test(load_module(path)[0], datamodule=dm, verbose=False)[0]
    assert tested["test/miou"] == pytest.approx(metrics["miou"], abs=1e-6)
    assert tested["test/mdice"] == pytest.approx(metrics["mdice"], abs=1e-6)
