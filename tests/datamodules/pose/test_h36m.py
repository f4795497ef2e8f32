"""Human3.6M as VideoPose3D prepares it: npz readers, cameras, sequences, windows."""

import json

import numpy as np
import pytest

from helpers.layouts import pose as layouts
from tessera.datamodules.common import DataError
from tessera.datamodules.pose import h36m
from tessera.datamodules.pose.datamodule import H36MDataModule, stack_windows
from tessera.datamodules.pose.datasets import LiftingDataset, flip_3d
from tessera.datamodules.pose.skeleton import coco_to_h36m


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return layouts.write_h36m(tmp_path_factory.mktemp("h36m"))


def test_reads_videopose3d_files(root):
    with np.load(root / "data_3d_h36m.npz", allow_pickle=True) as npz:
        raw = npz["positions_3d"].item()
        assert (
            raw["S1"]["Walking"].shape == (24, 32, 3) and raw["S1"]["Walking"].dtype == np.float32
        )
    pos3d = h36m.read_positions_3d(root / "data_3d_h36m.npz")
    assert pos3d["S9"]["Directions 1"].shape == (24, 17, 3)
    pos2d, meta = h36m.read_positions_2d(root / "data_2d_h36m_cpn_ft_h36m_dbb.npz")
    assert meta["keypoints_symmetry"] == [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]
    assert len(pos2d["S11"]["Walking"]) == 4 and pos2d["S11"]["Walking"][0].shape == (26, 17, 2)


def test_cameras_round_trip_and_projection(root):
    cams = h36m.read_cameras(root / "cameras.json")
    pos3d = h36m.read_positions_3d(root / "data_3d_h36m.npz")
    gt2d, _ = h36m.read_positions_2d(root / "data_2d_h36m_gt.npz")
    x = pos3d["S5"]["Walking"].astype(np.float64)
    for c, cam in enumerate(cams["S5"]):
        assert np.allclose(h36m.camera_to_world(h36m.world_to_camera(x, cam), cam), x)
        proj = h36m.project(h36m.world_to_camera(x, cam), cam)
        assert np.allclose(proj, gt2d["S5"]["Walking"][c], atol=1e-3)
    norm = h36m.normalize_screen_coordinates(np.array([[0, 0], [1000, 1002]]), 1000, 1002)
    assert np.allclose(norm, [[-1, -1.002], [1, 1.002]])
    assert np.allclose(h36m.image_coordinates(norm, 1000, 1002), [[0, 0], [1000, 1002]])


def test_sequences_are_root_relative_and_trimmed(root):
    dm = H36MDataModule(str(root), keypoints="cpn_ft_h36m_dbb", frames=5)
    seqs = dm.sequences(["S9", "S11"])
    assert len(seqs) == 2 * 2 * 4  # subjects × actions × cameras
    for s in seqs:
        assert s.poses_2d.shape == (24, 17, 2) and s.poses_3d.shape == (24, 17, 3)  # trimmed
        assert np.all(s.poses_3d[:, 0] == 0)
        bone = np.linalg.norm(s.poses_3d[:, 2] - s.poses_3d[:, 1], axis=-1)
        assert 0.3 < bone.mean() < 0.6  # metres, camera frame


def test_windows_are_edge_padded(root):
    seq = H36MDataModule(str(root), frames=5).sequences(["S1"])[0]
    item = LiftingDataset([seq], frames=5)[0]
    assert np.allclose(item["poses_2d"][:3], seq.poses_2d[0])
    assert np.allclose(stack_windows(seq.poses_2d, 5)[-1, -3:], seq.poses_2d[-1])
    assert np.allclose(flip_3d(flip_3d(seq.poses_3d)), seq.poses_3d)
    with pytest.raises(ValueError, match="odd"):
        LiftingDataset([seq], frames=4)


def test_splits_follow_videopose3d():
    assert h36m.TRAIN_SUBJECTS == ("S1", "S5", "S6", "S7", "S8")
    assert h36m.TEST_SUBJECTS == ("S9", "S11")


def test_bad_files_name_the_problem(root, tmp_path):
    with pytest.raises(DataError, match="camera file not found"):
        h36m.read_cameras(tmp_path / "cameras.json")
    np.savez_compressed(tmp_path / "data_2d_h36m_gt.npz", positions_2d={"S1": {}})
    with pytest.raises(DataError, match="no metadata"):
        h36m.read_positions_2d(tmp_path / "data_2d_h36m_gt.npz")
    (tmp_path / "data_3d_h36m.npz").write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot read as npz"):
        h36m.read_positions_3d(tmp_path / "data_3d_h36m.npz")
    pos3d = h36m.read_positions_3d(root / "data_3d_h36m.npz")
    gt2d, _ = h36m.read_positions_2d(root / "data_2d_h36m_gt.npz")
    cams = h36m.read_cameras(root / "cameras.json")
    short = {"S1": {a: [v[:10] for v in views] for a, views in gt2d["S1"].items()}}
    with pytest.raises(DataError, match="10 2-D frames for 24 mocap frames"):
        h36m.build_sequences(pos3d, short, cams, ["S1"])
    with pytest.raises(DataError, match="subject S7 not in the 3-D file"):
        h36m.build_sequences(pos3d, gt2d, cams, ["S7"])
    data = json.loads((root / "cameras.json").read_text())
    del data["intrinsics"]
    (tmp_path / "cameras.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match="malformed camera file"):
        h36m.read_cameras(tmp_path / "cameras.json")


def test_coco_layout_maps_to_h36m_order():
    kp = np.random.default_rng(0).normal(size=(3, 17, 2))
    out = coco_to_h36m(kp)
    assert out.shape == (3, 17, 2)
    assert np.allclose(out[:, 0], (kp[:, 11] + kp[:, 12]) / 2)  # pelvis = mid-hips
    assert np.allclose(out[:, 13], kp[:, 9]) and np.allclose(out[:, 16], kp[:, 10])  # wrists
