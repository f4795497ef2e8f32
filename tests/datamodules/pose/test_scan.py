"""The COCO image scan: missing images, size mismatches, corrupt headers and empty splits are
reported before training, with the file and the fix; the scan is cached."""

import json

import pytest
from PIL import Image

from helpers.layouts import pose as layouts
from tessera.datamodules.common import DataError
from tessera.datamodules.pose import scan
from tessera.datamodules.pose.datamodule import CocoKeypointDataModule


def _dm(root, **kwargs):
    return CocoKeypointDataModule(
        str(root), input_size=(48, 64), heatmap_size=(12, 16), sigma=1.0, batch_size=2, **kwargs
    )


def _images(root, split="train"):
    data = json.loads((root / f"annotations/person_keypoints_{split}2017.json").read_text())
    return [img["file_name"] for img in data["images"]]


def _edit(root, split, change):
    path = root / f"annotations/person_keypoints_{split}2017.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_a_clean_split_passes_with_a_progress_bar(tmp_path, capfd):
    root = layouts.write_coco(tmp_path / "coco")
    dm = _dm(root)
    dm.setup("fit")
    assert "scanning train2017 images" in capfd.readouterr().err
    assert dm.dropped_images == {"train": set(), "val": set()}


def test_missing_image_is_reported_before_training_with_its_name(tmp_path):
    root = layouts.write_coco(tmp_path / "coco")
    gone = _images(root)[1]
    (root / "train2017" / gone).unlink()
    with pytest.raises(DataError) as err:
        _dm(root).setup("fit")
    message = str(err.value)
    assert "person_keypoints_train2017.json" in message and gone in message
    assert "1 of 3 images of split 'train'" in message
    assert "download the train2017 images" in message and "on_error: skip" in message


def test_skip_drops_missing_images_with_a_warning(tmp_path):
    root = layouts.write_coco(tmp_path / "coco")
    gone = _images(root)[1]
    (root / "train2017" / gone).unlink()
    dm = _dm(root, on_error="skip")
    with pytest.warns(UserWarning, match=f"missing: .*{gone}.*dropped"):
        dm.setup("fit")
    image_id = int(gone.split(".")[0])
    assert dm.dropped_images["train"] == {image_id}
    assert all(i.image_id != image_id for i in dm.datasets["train"].instances)
    assert dm.report["person boxes in dropped images"] == 1
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 64, 48) and batch["skipped"] == []


def test_eval_scans_every_image_of_the_json(tmp_path):
    root = layouts.write_coco(tmp_path / "coco", splits=("val",))
    # an image with no person: unused for training, but COCOeval scores it
    Image.new("RGB", (30, 20)).save(root / "val2017" / "000000009999.jpg")
    _edit(
        root,
        "val",
        lambda d: d["images"].append(
            {"id": 9999, "file_name": "000000009999.jpg", "width": 30, "height": 20}
        ),
    )
    _dm(root).setup("validate")
    (root / "val2017" / "000000009999.jpg").unlink()
    with pytest.raises(DataError, match="000000009999.jpg"):
        _dm(root).setup("validate")


def test_size_mismatch_is_reported_with_both_sizes(tmp_path):
    root = layouts.write_coco(tmp_path / "coco")
    name = _images(root)[0]
    with Image.open(root / "train2017" / name) as im:
        w, h = im.size
        im.resize((w // 2, h // 2)).save(root / "train2017" / name)
    with pytest.raises(DataError) as err:
        _dm(root).setup("fit")
    message = str(err.value)
    assert name in message and f"json {w}x{h}, file {w // 2}x{h // 2} (WxH)" in message
    assert "on_size_mismatch" in message
    accepted = _dm(root, on_size_mismatch="accept")
    accepted.setup("fit")
    assert accepted.dropped_images["train"] == set()
    skipped = _dm(root, on_size_mismatch="skip")
    with pytest.warns(UserWarning, match="differ in size"):
        skipped.setup("fit")
    assert skipped.dropped_images["train"] == {int(name.split(".")[0])}


def test_corrupt_header_is_named(tmp_path):
    root = layouts.write_coco(tmp_path / "coco")
    name = _images(root)[2]
    (root / "train2017" / name).write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=f"{name}: unreadable header"):
        _dm(root).setup("fit")
    dm = _dm(root, on_error="skip")
    with pytest.warns(UserWarning, match="cannot be read"):
        dm.setup("fit")
    assert dm.dropped_images["train"] == {int(name.split(".")[0])}


def test_empty_splits_are_reported(tmp_path):
    root = layouts.write_coco(tmp_path / "coco")
    _edit(root, "train", lambda d: d.update(images=[], annotations=[]))
    with pytest.raises(DataError, match="person_keypoints_train2017.json: split 'train' lists no"):
        _dm(root).setup("fit")
    _edit(root, "val", lambda d: d.update(annotations=[]))
    with pytest.raises(DataError, match="person_keypoints_val2017.json: split 'val' has no usable"):
        _dm(root).setup("validate")
    root2 = layouts.write_coco(tmp_path / "coco2")
    for name in _images(root2, "val"):  # every image missing and skipped: nothing left
        (root2 / "val2017" / name).unlink()
    with (
        pytest.warns(UserWarning, match="dropped"),
        pytest.raises(DataError, match="no usable person left after dropping 3 images"),
    ):
        _dm(root2, on_error="skip").setup("validate")


def test_second_scan_reads_no_image(tmp_path, monkeypatch):
    root = layouts.write_coco(tmp_path / "coco")
    _dm(root).setup("fit")
    assert list(scan.cache_dir().glob("*.json"))

    def fail(*args, **kwargs):
        raise AssertionError("the scan opened an image")

    monkeypatch.setattr(Image, "open", fail)
    dm = _dm(root)
    dm.setup("fit")  # train and val from the cache
    assert len(dm.datasets["train"]) > 0
    (root / "train2017" / _images(root)[0]).unlink()  # the folder changed: rescanned
    with pytest.raises(AssertionError, match="opened an image"):
        _dm(root).setup("fit")


def test_scan_can_be_turned_off(tmp_path):
    root = layouts.write_coco(tmp_path / "coco")
    (root / "train2017" / _images(root)[1]).unlink()
    dm = _dm(root, scan=False)
    dm.setup("fit")  # the loader reports it when the item is read
    assert dm.dropped_images == {}
