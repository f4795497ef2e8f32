"""The real layouts (VITON-HD, DressCode, MVG) read as released, agnostic/mask derivation
from parse + pose, hard view selection, and the classic bad inputs."""

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.layouts import tryon as layouts
from tessera.datamodules.common import DataError, SkippedItem
from tessera.datamodules.tryon import TryOnDataset, TryOnDataWarning, detect_layout, list_records
from tessera.datamodules.tryon.agnostic import inpainting_mask
from tessera.datamodules.tryon.keypoints import (
    read_openpose_json,
    render_skeleton,
    side_view_faces_away,
)
from tessera.datamodules.tryon.labels import CIHP

SIZE = (32, 24)


@pytest.fixture(scope="module")
def vitonhd(tmp_path_factory):
    return layouts.write_vitonhd(tmp_path_factory.mktemp("vitonhd"))


@pytest.fixture(scope="module")
def dresscode(tmp_path_factory):
    return layouts.write_dresscode(tmp_path_factory.mktemp("dresscode"))


@pytest.fixture(scope="module")
def mvg(tmp_path_factory):
    return layouts.write_mvg(tmp_path_factory.mktemp("mvg"))


def quiet_item(dataset, i=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TryOnDataWarning)
        return dataset[i]


def test_layouts_are_detected(vitonhd, dresscode, mvg):
    assert [detect_layout(r) for r in (vitonhd, dresscode, mvg)] == ["vitonhd", "dresscode", "mvg"]
    with pytest.raises(FileNotFoundError, match="not a VITON-HD"):
        detect_layout(vitonhd / "test" / "image")


def test_vitonhd_paired_and_unpaired(vitonhd):
    paired = list_records(vitonhd, "test", pairs="paired")
    unpaired = list_records(vitonhd, "test", pairs="unpaired")
    assert [r.item_id for r in paired] == ["00002_00___00002_00", "00003_00___00003_00"]
    assert [r.item_id for r in unpaired] == ["00002_00___00003_00", "00003_00___00002_00"]
    sample = TryOnDataset(unpaired, SIZE)[0]
    assert sample["person"].shape == (3, *SIZE) and sample["mask"].shape == (1, *SIZE)
    assert not sample["paired"] and sample["view"] == 1 and not sample["use_back"]


def test_vitonhd_mask_derived_from_parse_and_pose(vitonhd):
    """No agnostic-mask folder ships with VITON-HD: the mask comes from parse + pose and
    covers the worn garment and arms, not the face or the legs."""
    r = list_records(vitonhd, "train")[0]
    parse = np.asarray(Image.open(r.parse))
    points = read_openpose_json(r.pose_json)
    mask = inpainting_mask(parse, points, CIHP)
    upper = parse == 5
    assert mask[upper].mean() == 1.0
    assert not mask[parse == 13].any() and not mask[np.isin(parse, (9, 16, 17))].any()
    sample = TryOnDataset([r], parse.shape)[0]
    torch.testing.assert_close(sample["mask"][0].bool(), torch.from_numpy(mask))
    grey = sample["agnostic"][:, sample["mask"][0].bool()]
    torch.testing.assert_close(grey, torch.full_like(grey, 128 / 255))


def test_body25_json_keys(vitonhd):
    r = list_records(vitonhd, "train")[0]
    doc = json.loads(r.pose_json.read_text())
    assert len(doc["people"][0]["pose_keypoints_2d"]) == 75
    points = read_openpose_json(r.pose_json)
    assert points.shape == (18, 2) and (points[:14] > 0).all()


def test_dresscode_categories_and_derived_garment_masks(dresscode):
    records = list_records(dresscode, "test", pairs="unpaired")
    assert {r.category for r in records} == {"upper_body", "lower_body", "dresses"}
    assert records[0].item_id == "000002_0___000003_1"
    with pytest.warns(TryOnDataWarning, match="garment has no mask"):
        sample = TryOnDataset(records, SIZE)[0]
    assert 0.1 < float(sample["garment_front_mask"].mean()) < 0.8
    train = list_records(dresscode, "train", categories=("lower_body",))
    assert len(train) == 2 and all(r.paired for r in train)
    lower = quiet_item(TryOnDataset(train, SIZE))
    assert float(lower["mask"].mean()) > 0.05


def test_mvg_views_and_hard_selection(mvg):
    records = list_records(mvg, "test")
    assert [r.view for r in records] == [1, 2, 3, 1, 2, 3]
    ds = TryOnDataset(records, SIZE)
    assert [bool(ds[i]["use_back"]) for i in range(3)] == [False, False, True]
    assert records[0].garment_front.name == "1.jpg" and records[0].garment_back.name == "5.jpg"
    unpaired = list_records(mvg, "test", pairs="unpaired")
    assert unpaired[0].item_id == "00001_1___00002_1"
    assert unpaired[0].prealigned.parent.name == "warp_feat_unpair"


def test_side_view_rule_reads_the_arm_colours():
    """MV-VTON's side-view rule: right upper arm further right than the left → back."""
    points = np.zeros((18, 2), np.float32)
    points[1], points[2], points[3], points[5], points[6] = (
        (12, 8),
        (6, 9),
        (4, 16),
        (18, 9),
        (20, 16),
    )
    facing = np.asarray(render_skeleton(points, (32, 24)))
    assert not side_view_faces_away(facing)
    away = points.copy()
    away[[2, 3, 5, 6]] = points[[5, 6, 2, 3]]
    assert side_view_faces_away(np.asarray(render_skeleton(away, (32, 24))))


def test_mismatched_sizes_are_resized_with_a_warning(tmp_path):
    root = layouts.write_vitonhd(tmp_path / "v", n_train=1, n_test=1)
    mask = root / "test" / "cloth-mask" / "00001_00.jpg"
    Image.open(mask).resize((30, 40)).save(mask)
    agnostic = root / "test" / "agnostic-v3.2" / "00001_00.jpg"
    Image.open(agnostic).resize((24, 32)).save(agnostic)
    ds = TryOnDataset(list_records(root, "test"), SIZE)
    with pytest.warns(TryOnDataWarning, match="differs from its image"):
        sample = ds[0]
    assert sample["agnostic"].shape == (3, *SIZE)


def test_unreadable_image_and_missing_pose_json(tmp_path):
    root = layouts.write_vitonhd(tmp_path / "v", n_train=1, n_test=2)
    (root / "test" / "image" / "00001_00.jpg").write_bytes(b"not a jpeg")
    (root / "test" / "openpose_json" / "00002_00_keypoints.json").unlink()
    records = list_records(root, "test")
    ds = TryOnDataset(records, SIZE)
    with pytest.raises(DataError, match="00001_00.jpg: cannot be read as an image"):
        ds[0]
    with pytest.raises(DataError, match="00002_00_keypoints.json: pose keypoints file is missing"):
        ds[1]
    skipping = TryOnDataset(records, SIZE, on_error="skip")
    assert isinstance(skipping[1], SkippedItem) and "OpenPose" in skipping[1].reason


def test_binary_mask_read_as_parse_is_refused(tmp_path):
    root = layouts.write_vitonhd(tmp_path / "v", n_train=1, n_test=1)
    parse = root / "test" / "image-parse-v3" / "00001_00.png"
    Image.fromarray((np.asarray(Image.open(parse)) > 0).astype(np.uint8) * 255, "L").save(parse)
    with pytest.raises(DataError, match="outside the 20 CIHP classes"):
        TryOnDataset(list_records(root, "test"), SIZE)[0]
