"""COCO keypoints as released: reading, clipping, bad input, odd images."""

import json

import numpy as np
import pytest
from PIL import Image

from helpers.layouts import pose as layouts
from tessera.datamodules.common import DataError, SkippedItem
from tessera.datamodules.pose import coco
from tessera.datamodules.pose.datamodule import CocoKeypointDataModule
from tessera.datamodules.pose.datasets import TopDownDataset, read_rgb


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return layouts.write_coco(tmp_path_factory.mktemp("coco"))


def _edit(root, tmp_path, change):
    data = json.loads((root / "annotations/person_keypoints_val2017.json").read_text())
    change(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return path


def test_reads_the_released_layout(root):
    ann = coco.read_annotations(root / "annotations/person_keypoints_train2017.json")
    train = coco.gt_instances(ann, root / "train2017", train=True)
    every = coco.gt_instances(ann, root / "train2017", train=False)
    # crowd regions and unlabelled persons are left out, as in mmpose
    assert len(every) == len(train) and ann.report["no labelled keypoints or crowd"] == 4
    assert all(i.keypoints.shape == (17, 3) for i in train)
    assert all(i.image_path.name == f"{i.image_id:012d}.jpg" for i in train)


def test_box_past_the_border_is_clipped(root):
    ann = coco.read_annotations(root / "annotations/person_keypoints_train2017.json")
    for inst in coco.gt_instances(ann, root / "train2017", train=False):
        x, y, w, h = inst.bbox
        assert x >= 0 and y >= 0 and x + w <= inst.image_size[0] - 1 + 1e-9
    assert coco.clip_box([90, 10, 50, 20], 97, 75).tolist() == [90, 10, 6, 20]


@pytest.mark.parametrize(
    "box", [[10, 10, 0, 20], [10, 10, 5, -3], [200, 10, 30, 30], [-50, -50, 20, 20]]
)
def test_zero_area_and_outside_boxes_are_left_out_and_counted(box):
    assert coco.clip_box(box, 97, 75) is None


def test_missing_fields_name_the_file_and_annotation(root, tmp_path):
    path = _edit(root, tmp_path, lambda d: d["annotations"][0].pop("area"))
    with pytest.raises(DataError, match=r"bad.json: annotation \d+ lacks \['area'\]"):
        coco.read_annotations(path)
    path = _edit(root, tmp_path, lambda d: d.pop("categories"))
    with pytest.raises(DataError, match="missing top-level field 'categories'"):
        coco.read_annotations(path)
    path = _edit(root, tmp_path, lambda d: d["annotations"][0].update(keypoints=[1, 2, 2] * 16))
    with pytest.raises(DataError, match="48 values, expected 51"):
        coco.read_annotations(path)
    path = _edit(root, tmp_path, lambda d: d["annotations"][0]["keypoints"].__setitem__(2, 3))
    with pytest.raises(DataError, match="visibility flags"):
        coco.read_annotations(path)
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        coco.read_annotations(path)


def test_detections_file_and_threshold(root):
    ann = coco.read_annotations(root / "annotations/person_keypoints_val2017.json")
    dets = root / "person_detection_results/COCO_val2017_detections_AP_H_56_person.json"
    everything = coco.detection_instances(ann.images, dets, root / "val2017")
    confident = coco.detection_instances(ann.images, dets, root / "val2017", score_threshold=0.3)
    assert len(everything) == len(confident) + 1
    assert {i.bbox_score for i in confident} <= {0.9, 0.8}


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "CMYK", "1"])
def test_any_image_mode_reads_as_rgb(tmp_path, mode):
    arr = (np.arange(35 * 23) % 255).reshape(23, 35)
    img = Image.fromarray(arr.astype(np.uint16 if mode == "I;16" else np.uint8))
    img = img if mode == "I;16" else img.convert(mode)
    path = tmp_path / ("x.png" if mode != "CMYK" else "x.jpg")
    img.save(path)
    out = read_rgb(path)
    assert out.mode == "RGB" and out.size == (35, 23)


def test_corrupt_image_raises_or_is_skipped(root, tmp_path):
    bad = tmp_path / "000000000001.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    inst = coco.PersonInstance("1_1", 1, bad, np.array([0, 0, 10, 10.0]))
    with pytest.raises(DataError, match="cannot decode image"):
        TopDownDataset([inst], (48, 64))[0]
    skipped = TopDownDataset([inst], (48, 64), on_error="skip")[0]
    assert isinstance(skipped, SkippedItem) and "000000000001.jpg" in skipped.path


def test_datamodule_batches_and_missing_split(root):
    dm = CocoKeypointDataModule(
        str(root), input_size=(48, 64), heatmap_size=(12, 16), sigma=1.0, batch_size=2
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 64, 48) and batch["heatmaps"].shape == (2, 17, 16, 12)
    assert batch["keypoint_weights"].shape == (2, 17)
    with pytest.raises(DataError, match="person_keypoints_test2017.json: file not found"):
        CocoKeypointDataModule(str(root), train_split="test").setup("fit")
