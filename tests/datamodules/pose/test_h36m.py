"""Human3.6M as VideoPose3D prepares it: npz readers, cameras, sequences, windows."""

import json
import shutil

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from helpers.layouts import pose as layouts
from tessera.datamodules.common import DataError
from tessera.datamodules.pose import calibration, h36m
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


# Fixture cameras: 1000 wide, 1002 high on the odd views (tests/helpers/layouts/pose.py).
FIXTURE_RESOLUTION = [[1000, 1000], [1000, 1002], [1000, 1000], [1000, 1002]]


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """Two subjects projected with known cameras (distortion included), and a copy of the
    same npz files without cameras.json whose calibration the data module recovered."""
    truth = layouts.write_h36m(tmp_path_factory.mktemp("h36m_truth"), subjects=("S1", "S9"))
    bare = tmp_path_factory.mktemp("h36m_bare")
    for f in truth.glob("*.npz"):
        shutil.copy(f, bare / f.name)
    dm = H36MDataModule(str(bare), frames=5, resolution=FIXTURE_RESOLUTION)
    dm.prepare_data()
    return truth, bare


def test_calibration_recovers_the_projecting_cameras(calibrated):
    truth, bare = calibrated
    raw = json.loads((bare / "cameras.json").read_text())
    assert raw["recovered_from"] == ["data_3d_h36m.npz", "data_2d_h36m_gt.npz"]
    want, got = h36m.read_cameras(truth / "cameras.json"), h36m.read_cameras(bare / "cameras.json")
    assert sorted(got) == ["S1", "S9"]
    for subject in got:
        assert len(got[subject]) == 4
        for view, a, b in zip(raw["extrinsics"][subject], want[subject], got[subject], strict=True):
            assert view["reprojection_rms_px"] < 1e-3
            ra = Rotation.from_quat(a.orientation, scalar_first=True).as_matrix()
            rb = Rotation.from_quat(b.orientation, scalar_first=True).as_matrix()
            assert np.allclose(ra, rb, atol=1e-5)
            assert np.allclose(a.translation, b.translation, atol=1e-4)  # metres
            assert np.allclose(a.focal_length, b.focal_length, atol=1e-2)  # pixels
            assert np.allclose(a.center, b.center, atol=1e-2)
            assert np.allclose(a.radial_distortion, b.radial_distortion, atol=5e-3)
            assert np.allclose(a.tangential_distortion, b.tangential_distortion, atol=1e-5)
            assert (b.res_w, b.res_h) == (a.res_w, a.res_h)


def test_reader_works_without_cameras_json(calibrated, monkeypatch):
    truth, bare = calibrated
    # A user's cameras.json is used as is, and the recovered one is cached: no fit here.
    monkeypatch.setattr(calibration, "recover_cameras", lambda *a, **k: pytest.fail("refit"))
    ref = H36MDataModule(str(truth), frames=5).sequences(["S9"])
    seqs = H36MDataModule(str(bare), frames=5).sequences(["S9"])
    assert len(seqs) == len(ref) == 2 * 4
    for a, b in zip(ref, seqs, strict=True):
        assert (a.action, a.camera) == (b.action, b.camera)
        assert np.allclose(a.poses_3d, b.poses_3d, atol=1e-5)
        assert np.allclose(a.poses_2d, b.poses_2d, atol=1e-6)
    item = LiftingDataset(seqs, frames=5)[0]
    assert item["poses_2d"].shape == (5, 17, 2)


def test_default_resolution_normalises_by_the_width(calibrated, tmp_path):
    truth, _ = calibrated
    for f in truth.glob("*.npz"):
        shutil.copy(f, tmp_path / f.name)
    raw = calibration.recover_cameras(
        tmp_path / "data_3d_h36m.npz", tmp_path / "data_2d_h36m_gt.npz", max_frames=12
    )
    assert {(i["res_w"], i["res_h"]) for i in raw["intrinsics"].values()} == {(1000, 1000)}


def test_detections_are_refused_for_calibration(calibrated, tmp_path):
    truth, _ = calibrated
    for f in truth.glob("*.npz"):
        shutil.copy(f, tmp_path / f.name)
    dm = H36MDataModule(
        str(tmp_path), keypoints="cpn_ft_h36m_dbb", calibration_keypoints="cpn_ft_h36m_dbb"
    )
    with pytest.raises(
        DataError, match=r"data_2d_h36m_cpn_ft_h36m_dbb\.npz: .*RMS of .* px"
    ) as err:
        dm.prepare_data()
    assert "pass the ground-truth 2-D file (data_2d_h36m_gt.npz) for calibration" in str(err.value)
    assert not (tmp_path / "cameras.json").exists()
    (tmp_path / "data_2d_h36m_gt.npz").unlink()
    with pytest.raises(DataError, match="no data_2d_h36m_gt.npz to recover it from"):
        H36MDataModule(str(tmp_path), keypoints="cpn_ft_h36m_dbb").sequences(["S1"])
