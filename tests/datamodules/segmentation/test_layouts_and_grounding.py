"""Layouts (mmseg, VOC, ISIC), VizWiz grounding json, RefCOCO refs, datamodules."""

import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from tessera.datamodules.common import DataError
from tessera.datamodules.segmentation import GroundingDataModule, SemanticDataModule
from tessera.datamodules.segmentation.datasets import GroundingDataset, SemanticDataset
from tessera.datamodules.segmentation.grounding import (
    coco_mask,
    load_refs,
    read_pairs,
    read_refcoco,
    read_vizwiz,
)
from tessera.datamodules.segmentation.io import LabelSpec
from tessera.datamodules.segmentation.layouts import list_items
from tessera.datamodules.segmentation.synth import CLASSES


def _img(path, h=8, w=8, value=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(path)


def _mask(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr, np.uint8)).save(path)


def test_mmseg_world_batches(world):
    dm = SemanticDataModule(str(world), num_classes=len(CLASSES), batch_size=4, size=32)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["label"].shape == (4, 32, 32)
    assert set(batch["label"].unique().tolist()) <= {0, 1, 2, 3, 255}
    val = next(iter(dm.val_dataloader()))
    assert val["orig_size"].tolist() == [[64, 64]] * 3


def test_voc_layout(tmp_path):
    root = tmp_path / "VOC2012"
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000032\n")
    _img(root / "JPEGImages" / "2007_000032.jpg")
    _mask(root / "SegmentationClass" / "2007_000032.png", np.full((8, 8), 15))
    items = list_items(root, "val", "voc")
    ds = SemanticDataset(items, LabelSpec(21))
    assert ds[0]["target"].unique().tolist() == [15]


def test_isic_layout_reads_binary_masks(tmp_path):
    _img(tmp_path / "ISIC2018_Task1-2_Validation_Input" / "ISIC_0000001.jpg")
    gt = np.zeros((8, 8))
    gt[2:5, 2:5] = 255
    _mask(tmp_path / "ISIC2018_Task1_Validation_GroundTruth" / "ISIC_0000001_segmentation.png", gt)
    dm = SemanticDataModule(str(tmp_path), layout="isic", size=8)
    sample = dm.build("val", False, "raise")[0]
    assert sample["target"].sum() == 9 and dm.class_names == ["background", "lesion"]


def test_mask_image_size_mismatch_is_an_error_naming_both(tmp_path):
    _img(tmp_path / "img_dir" / "train" / "a.png", 8, 8)
    _mask(tmp_path / "ann_dir" / "train" / "a.png", np.zeros((6, 8)))
    ds = SemanticDataset(list_items(tmp_path, "train"), LabelSpec(2))
    with pytest.raises(
        DataError, match=r"ann_dir/train/a.png: mask is 8x6 .* image .*a.png is 8x8"
    ):
        ds[0]
    skipped = SemanticDataset(list_items(tmp_path, "train"), LabelSpec(2), on_error="skip")[0]
    assert skipped.item_id == "a" and "mask is 8x6" in skipped.reason


def test_vizwiz_reader_and_empty_question(tmp_path):
    _img(tmp_path / "val" / "VizWiz_val_00000001.jpg")
    _mask(tmp_path / "binary_masks_png" / "val" / "VizWiz_val_00000001.png", np.zeros((8, 8)))
    records = {"VizWiz_val_00000001.jpg": {"question": "What is this?", "answers": ["cup"]}}
    (tmp_path / "val_grounding.json").write_text(json.dumps(records))
    items = read_vizwiz(tmp_path, "val")
    assert items[0].text == "What is this?" and items[0].item_id == "VizWiz_val_00000001"
    sample = GroundingDataset(items, size=8)[0]
    assert sample["target"].sum() == 0 and sample["text"] == "What is this?"
    records["VizWiz_val_00000001.jpg"]["question"] = "   "
    (tmp_path / "val_grounding.json").write_text(json.dumps(records))
    with pytest.raises(DataError, match="empty question"):
        read_vizwiz(tmp_path, "val")


def test_refcoco_polygons_rle_and_no_target(tmp_path):
    root = tmp_path
    (root / "refcoco").mkdir()
    _img(root / "images/mscoco/images/train2014" / "COCO_train2014_000000000001.jpg", 10, 10)
    instances = {
        "images": [
            {"id": 1, "file_name": "COCO_train2014_000000000001.jpg", "height": 10, "width": 10}
        ],
        "annotations": [
            {
                "id": 7,
                "image_id": 1,
                "category_id": 1,
                "segmentation": [[2.0, 2.0, 6.0, 2.0, 6.0, 6.0, 2.0, 6.0]],
            },
        ],
    }
    (root / "refcoco" / "instances.json").write_text(json.dumps(instances))
    refs = [
        {
            "ref_id": 1,
            "ann_id": 7,
            "image_id": 1,
            "split": "val",
            "sentences": [{"sent": "the square", "sent_id": 11}, {"sent": "box", "sent_id": 12}],
        },
        {
            "ref_id": 2,
            "ann_id": [-1],
            "image_id": 1,
            "split": "val",
            "sentences": [{"sent": "the dog", "sent_id": 13}],
        },
    ]
    (root / "refcoco" / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    items = read_refcoco(root, "val")
    assert [i.item_id for i in items] == ["1_11", "1_12", "2_13"]
    ds = GroundingDataset(items, size=10)
    polygon_mask = ds[0]["target"]
    assert 12 <= int(polygon_mask.sum()) <= 25  # the 4x4 square, rasterised by pycocotools
    assert ds[2]["target"].sum() == 0  # gRefCOCO-style no-target ref


def test_refs_pickle_cannot_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "refs(unc).p").write_bytes(pickle.dumps([Evil()]))
    with pytest.raises(DataError, match="not a plain refs pickle"):
        load_refs(tmp_path / "refs(unc).p")


def test_synth_rle_masks_match_the_vizwiz_masks_layouts(world):
    """The same scene's RefCOCO masks decode to shapes that sum to the semantic foreground."""
    items = [i for i in read_refcoco(world / "refcoco", "test") if i.segmentations]
    sem = np.array(Image.open(world / "ann_dir" / "test" / "test_00000.png"))
    first = [i for i in items if i.image.name == "test_00000.png"]
    union = np.zeros_like(sem)
    for item in first:
        union |= coco_mask(item.segmentations, *sem.shape).astype(sem.dtype)
    np.testing.assert_array_equal(union, sem > 0)


def test_grounding_datamodule_vizwiz_and_refcoco(world):
    items = read_vizwiz(world / "grounding", "val")  # 3 questions per scene
    assert [i.item_id for i in items[:3]] == ["val_00000", "val_00000_q1", "val_00000_q2"]
    assert len(items) == 9 and len({i.text for i in items[:3]}) > 1
    dm = GroundingDataModule(str(world / "grounding"), batch_size=3)
    batch = next(iter(dm.val_dataloader()))
    assert len(batch["text"]) == 3 and [t.shape for t in batch["target"]] == [(64, 64)] * 3
    rc = GroundingDataModule(str(world / "refcoco"), format="refcoco", batch_size=4)
    batch = next(iter(rc.train_dataloader()))
    assert batch["image"].shape == (4, 3, 64, 64)


def test_predict_pairs_json(world, tmp_path):
    pairs = [{"image": str(world / "img_dir" / "test" / "test_00000.png"), "question": "red?"}]
    (tmp_path / "pairs.json").write_text(json.dumps(pairs))
    items = read_pairs(tmp_path / "pairs.json")
    sample = GroundingDataset(items, size=32)[0]
    assert "label" not in sample and sample["image"].shape == (3, 32, 32)
    (tmp_path / "bad.json").write_text(json.dumps([{"image": "x.png", "question": ""}]))
    with pytest.raises(DataError, match="empty question"):
        read_pairs(tmp_path / "bad.json")


def test_synth_is_deterministic(tmp_path):
    from tessera.datamodules.segmentation.synth import generate

    a = generate(tmp_path / "a", seed=5, splits={"train": 2, "val": 0, "test": 1}, progress=False)
    b = generate(tmp_path / "b", seed=5, splits={"train": 2, "val": 0, "test": 1}, progress=False)
    for rel in ("img_dir/train/train_00001.png", "grounding/test_grounding.json"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes()
    assert not (a / "img_dir" / "val").exists()
    assert torch.equal(
        torch.from_numpy(np.array(Image.open(a / "ann_dir/test/test_00000.png"))),
        torch.from_numpy(np.array(Image.open(b / "ann_dir/test/test_00000.png"))),
    )
