"""KITTI / custom layouts, calibration, box conversion, point files and bad input."""

import numpy as np
import pytest

from helpers.layouts import detection3d as layouts
from tessera.datamodules.common import DataError
from tessera.datamodules.detection3d.calibration import (
    Calibration,
    camera_boxes_to_lidar,
    fov_mask,
    image_boxes,
    lidar_boxes_to_camera,
)
from tessera.datamodules.detection3d.labels import parse_custom_labels, parse_kitti_labels
from tessera.datamodules.detection3d.layouts import (
    custom_refs,
    detect_layout,
    folder_refs,
    kitti_refs,
    load_frame,
)
from tessera.datamodules.detection3d.points import read_points

CLASSES = ("Car", "Pedestrian", "Cyclist")


def write_pcd(path, points: np.ndarray, data: str) -> None:
    """A PCD v0.7 file as the PCL file-format spec describes (x y z intensity float32)."""
    header = (
        "# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\nFIELDS x y z intensity\n"
        "SIZE 4 4 4 4\nTYPE F F F F\nCOUNT 1 1 1 1\n"
        f"WIDTH {len(points)}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {len(points)}\n"
        f"DATA {data}\n"
    )
    if data == "ascii":
        body = "".join(" ".join(f"{v:g}" for v in p) + "\n" for p in points).encode()
    else:
        body = points.astype("<f4").tobytes()
    path.write_bytes(header.encode() + body)


@pytest.fixture(scope="module")
def kitti(tmp_path_factory):
    return layouts.write_kitti(tmp_path_factory.mktemp("kitti"))


def test_kitti_layout_splits_and_frames(kitti):
    assert detect_layout(kitti) == "kitti"
    train, val, test = (kitti_refs(kitti, s) for s in ("train", "val", "test"))
    assert [r.item_id for r in train] == ["000000", "000001", "000002"]
    assert [r.item_id for r in val] == ["000003", "000004"]
    assert all(r.label is None and "testing" in str(r.points) for r in test)
    frame = load_frame(train[0], "kitti", CLASSES)
    # Van, Person_sitting and DontCare stay in the raw labels (for evaluation), not in training
    assert {"Van", "Person_sitting", "DontCare"} <= set(frame.labels.name)
    assert set(frame.gt_names) <= set(CLASSES) and len(frame.gt_boxes) == 4
    assert frame.image_shape == (375, 1242)
    # FOV crop: every kept point projects into the image
    assert fov_mask(frame.points, frame.calib, frame.image_shape).all()
    assert 0 < len(frame.points) < len(read_points(train[0].points)[0])


def test_camera_lidar_round_trip_and_fixture_labels(kitti):
    calib = Calibration.from_file(kitti / "training" / "calib" / "000000.txt")
    labels = parse_kitti_labels(kitti / "training" / "label_2" / "000000.txt")
    real = np.array([n != "DontCare" for n in labels.name])
    obj = labels.select(real)
    boxes = camera_boxes_to_lidar(obj.location, obj.dimensions, obj.rotation_y, calib)
    loc, dims, ry = lidar_boxes_to_camera(boxes, calib)
    np.testing.assert_allclose(loc, obj.location, atol=1e-6)
    np.testing.assert_allclose(dims, obj.dimensions)
    np.testing.assert_allclose(np.cos(ry - obj.rotation_y), 1, atol=1e-9)
    # the fixture's 2-D boxes are the projected boxes (2-decimal rounding)
    np.testing.assert_allclose(image_boxes(boxes, calib, (375, 1242)), obj.bbox, atol=0.6)
    # KITTI convention: ry = 0 (facing camera x) is LiDAR heading -pi/2
    one = camera_boxes_to_lidar(np.array([[0.0, 1.0, 10.0]]), np.array([[1.5, 1.6, 3.9]]),
                                np.array([0.0]), calib)  # fmt: skip
    assert one[0, 3:6].tolist() == [3.9, 1.6, 1.5] and one[0, 6] == pytest.approx(-np.pi / 2)


def test_difficulty_levels():
    from tessera.datamodules.detection3d.labels import KittiLabels

    labels = KittiLabels(
        ["Car"] * 4, np.array([0.0, 0.2, 0.4, 0.0]), np.array([0, 1, 2, 0]), np.zeros(4),
        np.array([[0, 0, 10, 50], [0, 0, 10, 30], [0, 0, 10, 30], [0, 0, 10, 25]], float),
        np.ones((4, 3)), np.ones((4, 3)), np.zeros(4), np.zeros(4),
    )  # fmt: skip
    assert labels.difficulty().tolist() == [0, 1, 2, -1]  # 25 px is not > 25


def test_custom_layout(tmp_path):
    root = layouts.write_custom(tmp_path)
    assert detect_layout(root) == "custom"
    refs = custom_refs(root, "train")
    frame = load_frame(refs[0], "custom", ("Vehicle", "Pedestrian", "Cyclist"))
    assert frame.gt_boxes.shape == (4, 7) and frame.gt_names[0] == "Vehicle"
    with pytest.raises(DataError, match=r"000000.txt: line 1: category 'Vehicle' is not in"):
        parse_custom_labels(refs[0].label, ("Car",))


def test_single_files_and_intensity(tmp_path):
    pts = np.array([[1, 2, 3, 200], [4, 5, 6, 10], [np.nan, 0, 0, 1]], np.float32)
    np.save(tmp_path / "a.npy", pts)
    cloud, notes = read_points(tmp_path / "a.npy")
    assert len(cloud) == 2 and cloud[:, 3].max() == pytest.approx(200 / 255)
    assert any("NaN" in n for n in notes) and any("divided by 255" in n for n in notes)
    np.save(tmp_path / "b.npy", pts[:2, :3])
    assert read_points(tmp_path / "b.npy")[0][:, 3].tolist() == [0.0, 0.0]
    for kind in ("ascii", "binary"):
        path = tmp_path / f"{kind}.pcd"
        write_pcd(path, pts[:2], kind)
        got, notes = read_points(path, intensity="keep")
        np.testing.assert_allclose(got, pts[:2])
        assert read_points(path)[0][0, 3] == pytest.approx(200 / 255)
    kitti_like = pts[:2].copy()
    kitti_like[:, 3] = 0.5
    kitti_like.tofile(tmp_path / "c.bin")
    got, notes = read_points(tmp_path / "c.bin")
    assert notes == ["intensity already in [0, 1], kept"]
    assert [r.item_id for r in folder_refs(tmp_path)] == ["a", "ascii", "b", "binary", "c"]


def test_bad_input(tmp_path, kitti):
    (tmp_path / "t.bin").write_bytes(np.zeros(5, np.float32).tobytes())  # 20 bytes
    with pytest.raises(DataError, match=r"t.bin: size 20 bytes is not a multiple of 16"):
        read_points(tmp_path / "t.bin")
    (tmp_path / "empty.bin").write_bytes(b"")
    assert read_points(tmp_path / "empty.bin")[0].shape == (0, 4)
    (tmp_path / "l.txt").write_text(
        "Car 0 0 0 1 2 3 4 1 1 1 1 1 1 0\nCar 0 0 0 1 2 3 4 1 1 1 1 1\n"
    )
    with pytest.raises(DataError, match=r"l.txt: line 2 has 13 fields, expected 15"):
        parse_kitti_labels(tmp_path / "l.txt")
    (tmp_path / "l.txt").write_text("Car 0 0 0 1 2 3 4 1 1 x 1 1 1 0\n")
    with pytest.raises(DataError, match=r"l.txt: line 1 has a non-numeric field"):
        parse_kitti_labels(tmp_path / "l.txt")
    calib = (kitti / "training" / "calib" / "000000.txt").read_text().splitlines()
    calib[5] = "Tr_velo_to_cam: 1 2 3"
    (tmp_path / "c.txt").write_text("\n".join(calib))
    with pytest.raises(DataError, match=r"c.txt: Tr_velo_to_cam has 3 values, expected 12"):
        Calibration.from_file(tmp_path / "c.txt")
    calib[2] = "P2: 1 2 oops"
    (tmp_path / "c.txt").write_text("\n".join(calib))
    with pytest.raises(DataError, match=r"c.txt: line 3 \(P2\) has a non-numeric value"):
        Calibration.from_file(tmp_path / "c.txt")
    (kitti / "ImageSets" / "broken.txt").write_text("000000\n999999\n")
    with pytest.raises(DataError, match=r"4 file\(s\) listed in ImageSets/broken.txt are missing"):
        kitti_refs(kitti, "broken")
