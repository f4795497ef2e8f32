"""The synthetic pose world (``tessera pose synth``): seeded, split sizes honoured, the
documented COCO / VideoPose3D layout, and plausible people (bone lengths, joint limits,
visibility as the image shows it). Worlds here are a few images and short clips."""

import dataclasses
import json

import numpy as np
import pytest

from tessera.cli import main as tessera_main
from tessera.datamodules.pose import coco, h36m, synth
from tessera.datamodules.pose.motion import ACTIONS, sample_motion
from tessera.datamodules.pose.skeleton import H36M_LEFT, H36M_PARENTS, H36M_RIGHT

SIZES = {"train": 2, "val": 0, "test": 1}
CLIPS, FRAMES = (1, 0, 1), 16


def _world(path, seed):
    return synth.generate(path, seed, **SIZES, clips=CLIPS, clip_frames=FRAMES)


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    return {
        name: _world(tmp_path_factory.mktemp(name), seed)
        for name, seed in (("a", 0), ("a_again", 0), ("b", 1))
    }


def _files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def _npz(path, key):
    with np.load(path, allow_pickle=True) as f:
        return f[key].item()


def _same_nested(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_nested(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same_nested(x, y) for x, y in zip(a, b, strict=True))
    return np.array_equal(a, b)


# --- seeds -----------------------------------------------------------------------------------


def test_same_seed_writes_identical_files(worlds):
    a, b = worlds["a"], worlds["a_again"]
    assert _files(a) == _files(b)
    for rel in _files(a):
        if rel.suffix in (".json", ".jpg"):
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    for name, key in (("data_3d_h36m", "positions_3d"), ("data_2d_h36m_gt", "positions_2d")):
        path = f"h36m/{name}.npz"
        assert _same_nested(_npz(a / path, key), _npz(b / path, key)), name


def test_another_seed_writes_another_world(worlds):
    a, b = worlds["a"], worlds["b"]
    assert _files(a) == _files(b)  # same layout and names ...
    for rel in _files(a):
        if rel.suffix in (".json", ".jpg"):
            assert (a / rel).read_bytes() != (b / rel).read_bytes(), rel  # ... new content
    path = "h36m/data_3d_h36m.npz"
    assert not _same_nested(_npz(a / path, "positions_3d"), _npz(b / path, "positions_3d"))


# --- sizes and layout ------------------------------------------------------------------------


def _check_coco(root, sizes):
    for split, n in sizes.items():
        ann = root / f"coco/annotations/person_keypoints_{split}2017.json"
        dets = root / f"coco/person_detection_results/COCO_{split}2017_detections.json"
        if n == 0:  # a size of 0 omits the split entirely
            assert not ann.exists() and not dets.exists()
            assert not (root / f"coco/{split}2017").exists()
            continue
        data = json.loads(ann.read_text())
        assert len(data["images"]) == n and len(list((root / f"coco/{split}2017").iterdir())) == n
        assert data["categories"][0]["name"] == "person"
        assert len(data["categories"][0]["keypoints"]) == 17
        instances = coco.gt_instances(coco.read_annotations(ann), root / f"coco/{split}2017", True)
        assert instances and all(i.image_path.is_file() for i in instances)
        for det in json.loads(dets.read_text()):
            assert det.keys() >= {"image_id", "category_id", "bbox", "score"}


def _check_h36m(root, clips, frames):
    positions = h36m.read_positions_3d(root / "h36m/data_3d_h36m.npz")
    raw = _npz(root / "h36m/data_3d_h36m.npz", "positions_3d")
    cameras = json.loads((root / "h36m/cameras.json").read_text())
    for split, n in zip(("train", "val", "test"), clips, strict=True):
        subjects = synth.SPLIT_SUBJECTS[split]
        clips_here = sum(len(positions.get(s, {})) for s in subjects)
        assert clips_here == n, split
        assert all(s in cameras["extrinsics"] for s in subjects) == (n > 0)
    for name in ("gt", "det"):
        poses_2d, meta = h36m.read_positions_2d(root / f"h36m/data_2d_h36m_{name}.npz")
        assert meta["layout_name"] == "h36m" and meta["num_joints"] == 17
        for s, actions in raw.items():
            for action, pose in actions.items():
                assert pose.shape == (frames, 32, 3) and pose.dtype == np.float32
                views = poses_2d[s][action]
                assert len(views) == 4 and all(v.shape == (frames, 17, 2) for v in views)


def test_split_sizes_are_honoured_and_zero_omits_the_split(worlds):
    _check_coco(worlds["a"], SIZES)
    _check_h36m(worlds["a"], CLIPS, FRAMES)


def test_cli_writes_the_documented_layout(tmp_path, capsys):
    out = tmp_path / "world"
    argv = ["pose", "synth", "--out", str(out), "--seed", "5", "--train", "1", "--val", "1"]
    argv += ["--test", "0", "--clips", "0", "1", "0", "--clip-frames", "9"]
    assert tessera_main(argv) == 0
    assert str(out) in capsys.readouterr().out
    expected = [
        "coco/annotations/person_keypoints_train2017.json",
        "coco/annotations/person_keypoints_val2017.json",
        "coco/person_detection_results/COCO_train2017_detections.json",
        "coco/person_detection_results/COCO_val2017_detections.json",
        "coco/train2017/000000100000.jpg",
        "coco/val2017/000000200000.jpg",
        "h36m/cameras.json",
        "h36m/data_2d_h36m_det.npz",
        "h36m/data_2d_h36m_gt.npz",
        "h36m/data_3d_h36m.npz",
    ]
    assert [str(p) for p in _files(out)] == expected
    _check_coco(out, {"train": 1, "val": 1, "test": 0})
    _check_h36m(out, (0, 1, 0), 9)


# --- plausibility: skeletons -----------------------------------------------------------------

BONES = [(j, p) for j, p in enumerate(H36M_PARENTS) if p >= 0]
# Loose adult ranges in metres (child → parent, H36M-17 order).
_HALF = {
    "hip": (0.08, 0.18),  # pelvis → hip (half hip width)
    "thigh": (0.33, 0.56),
    "shin": (0.32, 0.55),
    "shoulder": (0.12, 0.24),  # thorax → shoulder
    "upper arm": (0.21, 0.37),
    "forearm": (0.19, 0.33),
}
_SIDE = [_HALF[k] for k in ("hip", "thigh", "shin", "shoulder", "upper arm", "forearm")]
BONE_RANGE = {
    **dict(zip(H36M_RIGHT, _SIDE, strict=True)),
    **dict(zip(H36M_LEFT, _SIDE, strict=True)),
    7: (0.18, 0.32),  # pelvis → spine
    8: (0.17, 0.31),  # spine → thorax
    9: (0.06, 0.16),  # thorax → neck/nose
    10: (0.08, 0.19),  # neck/nose → head
}
# Limbs and trunk: every bone but the two of the head.
RIGID = [j for j, _ in BONES if j not in (9, 10)]


def _bone_lengths(joints):
    """``(T, 17, 3)`` → ``(T, 16)`` bone lengths in :data:`BONES` order."""
    return np.stack([np.linalg.norm(joints[:, j] - joints[:, p], axis=-1) for j, p in BONES], 1)


def _clip(action, seed):
    joints, _ = sample_motion(np.random.default_rng(seed), 60, action)
    return joints


@pytest.mark.parametrize("action", ACTIONS)
def test_limb_and_trunk_bones_keep_their_length_within_human_ranges(action):
    for seed in range(4):
        lengths = _bone_lengths(_clip(action, seed))
        rigid = [i for i, (j, _) in enumerate(BONES) if j in RIGID]
        assert np.ptp(lengths[:, rigid], axis=0).max() < 1e-9
        for i, (j, _) in enumerate(BONES):
            lo, hi = BONE_RANGE[j]
            assert lo <= lengths[:, i].min() and lengths[:, i].max() <= hi, (action, j)
        left = [i for i, (j, _) in enumerate(BONES) if j in H36M_LEFT]
        right = [i for i, (j, _) in enumerate(BONES) if j in H36M_RIGHT]
        np.testing.assert_allclose(lengths[:, left], lengths[:, right], atol=1e-9)


@pytest.mark.parametrize(
    "action",
    [
        pytest.param(
            a,
            marks=pytest.mark.xfail(
                a == "Squat",
                strict=True,
                reason="motion.py offsets neck/nose forward along the body's x axis, not the "
                "leaning trunk's, so thorax→neck/nose and neck/nose→head change by ~1 cm as "
                "a squat leans (left as is: fixing it changes the world the shipped "
                "checkpoints were scored on)",
            ),
        )
        for a in ACTIONS
    ],
)
def test_head_bones_keep_their_length(action):
    for seed in range(4):
        lengths = _bone_lengths(_clip(action, seed))
        assert np.ptp(lengths, axis=0).max() < 1e-6


@pytest.mark.parametrize("action", ACTIONS)
def test_joints_stay_within_limits(action):
    for seed in range(4):
        j = _clip(action, seed)
        left = (j[:, 4] - j[:, 1]) / np.linalg.norm(j[:, 4] - j[:, 1], axis=-1, keepdims=True)
        for hip, knee, foot in ((1, 2, 3), (4, 5, 6)):
            thigh, shin = j[:, knee] - j[:, hip], j[:, foot] - j[:, knee]
            # knees bend backwards only (no hyperextension) and less than 150°
            assert (np.einsum("ti,ti->t", np.cross(thigh, shin), left) >= 0).all()
            assert _angle(thigh, shin).max() < np.deg2rad(150)
        for shoulder, elbow, wrist in ((11, 12, 13), (14, 15, 16)):
            flexion = _angle(j[:, elbow] - j[:, shoulder], j[:, wrist] - j[:, elbow])
            assert flexion.max() < np.deg2rad(150) + 1e-9  # elbows bend < 150°
        # on the floor (z = 0), never under it; head above the pelvis; speed < 10 m/s
        assert np.abs(np.minimum(j[:, 3, 2], j[:, 6, 2])).max() < 1e-9
        assert j[..., 2].min() > -1e-9 and (j[:, 10, 2] > j[:, 0, 2] + 0.3).all()
        assert np.linalg.norm(np.diff(j, axis=0), axis=-1).max() * 25 < 10


def _angle(a, b):
    cos = np.einsum("ti,ti->t", a, b) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return np.arccos(np.clip(cos, -1, 1))


def test_lifting_clips_keep_bone_lengths_over_time(worlds):
    for actions in h36m.read_positions_3d(worlds["a"] / "h36m/data_3d_h36m.npz").values():
        for pose in actions.values():
            lengths = _bone_lengths(pose.astype(np.float64))
            rigid = [i for i, (j, _) in enumerate(BONES) if j in RIGID]
            assert np.ptp(lengths[:, rigid], axis=0).max() < 1e-5  # float32 file


# --- plausibility: visibility ----------------------------------------------------------------


def test_visibility_flags_follow_the_projected_keypoints(monkeypatch):
    """v = 0 exactly for joints projected outside the image, v > 0 inside (principal points
    moved off centre so that people are cut by the border)."""
    projected = []

    def recording_project(x_cam, cam):
        out = h36m.project(x_cam, cam)
        projected.append(out)
        return out

    def off_centre_camera(rng, target, size, cam_id="cam", distance=(3.5, 6.0)):
        cam = camera(rng, target, size, cam_id, distance)
        shift = rng.choice([-1.0, 1.0], 2) * rng.uniform(0.25, 0.45, 2) * np.array(size)
        return dataclasses.replace(cam, center=cam.center + shift)

    camera = synth.random_camera
    monkeypatch.setattr(synth, "project", recording_project)
    monkeypatch.setattr(synth, "random_camera", off_centre_camera)
    w, h = synth.IMAGE_SIZE
    counts = {"outside": 0, "inside": 0, "occluded": 0}
    for seed in range(8):
        projected.clear()
        _, anns, _ = synth.make_image(np.random.default_rng(seed), seed)
        for ann in anns:
            kp = np.array(ann["keypoints"], dtype=np.float64).reshape(17, 3)
            v = kp[:, 2]
            # the projection this annotation came from (persons without a visible joint drop)
            match = [
                p for p in projected if np.allclose(p[v > 0].round(2), kp[v > 0, :2], atol=0.006)
            ]
            assert len(match) == 1
            p = match[0]
            inside = (p[:, 0] >= 0) & (p[:, 0] < w) & (p[:, 1] >= 0) & (p[:, 1] < h)
            assert ((v > 0) == inside).all(), seed
            assert (kp[v == 0, :2] == 0).all() and set(v) <= {0, 1, 2}
            assert ann["num_keypoints"] == int((v > 0).sum())
            counts["outside"] += int((~inside).sum())
            counts["inside"] += int(inside.sum())
            counts["occluded"] += int((v == 1).sum())
    assert min(counts.values()) > 0, counts  # the seeds exercise every case


def test_annotations_of_the_world_are_consistent(worlds):
    w, h = synth.IMAGE_SIZE
    for split in ("train", "test"):
        path = worlds["a"] / f"coco/annotations/person_keypoints_{split}2017.json"
        for ann in json.loads(path.read_text())["annotations"]:
            kp = np.array(ann["keypoints"], dtype=np.float64).reshape(17, 3)
            labelled = kp[:, 2] > 0
            assert ann["num_keypoints"] == labelled.sum() > 0
            assert (kp[~labelled, :2] == 0).all()
            assert (kp[labelled, :2] >= 0).all()
            assert (kp[labelled, 0] <= w).all() and (kp[labelled, 1] <= h).all()
            x, y, bw, bh = ann["bbox"]
            assert x >= 0 and y >= 0 and x + bw <= w and y + bh <= h and ann["area"] > 0
