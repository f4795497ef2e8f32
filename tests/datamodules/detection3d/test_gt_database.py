"""Ground-truth sampling database: built from the training split of a KITTI-layout fixture,
pasted into frames without collisions; the geometry helpers against shapely / by hand."""

import json

import numpy as np
import pytest
import shapely.geometry as G

from helpers.layouts import detection3d as layouts
from tessera.datamodules.common import DataError
from tessera.datamodules.detection3d.datamodule import Detection3DDataModule
from tessera.datamodules.detection3d.gt_database import (
    GTSampler,
    _footprints,
    bev_overlaps,
    build_gt_database,
    points_in_boxes,
)
from tessera.datamodules.detection3d.synth import write_world

CLASSES = ("Car", "Pedestrian", "Cyclist")


def test_points_in_a_rotated_box():
    box = np.array([[10.0, 5.0, 0.0, 4.0, 2.0, 1.5, np.pi / 2]])  # long side along y
    pts = np.array([[10, 6.9, 0, 0], [10, 7.1, 0, 0], [10.9, 5, 0.7, 0], [11.1, 5, 0, 0],
                    [10, 5, 0.8, 0]], dtype=np.float32)  # fmt: skip
    assert points_in_boxes(pts, box)[:, 0].tolist() == [True, False, True, False, False]


def test_bev_overlaps_equal_shapely():
    rng = np.random.default_rng(0)
    a = np.c_[rng.uniform(0, 8, (60, 2)), np.zeros(60), rng.uniform(0.3, 4, (60, 3)),
              rng.uniform(-np.pi, np.pi, 60)]  # fmt: skip
    b = a[rng.permutation(60)][:40] + np.r_[0.5, 0.5, 0, 0, 0, 0, 0.3]
    ours = bev_overlaps(a, b)
    ref = [[G.Polygon(p).intersects(G.Polygon(q)) for q in _footprints(b)] for p in _footprints(a)]
    assert 0.1 < ours.mean() < 0.9 and (ours == np.array(ref)).all()


@pytest.fixture(scope="module")
def kitti(tmp_path_factory):
    return layouts.write_kitti(tmp_path_factory.mktemp("kitti"), train=3, val=1, test=1)


@pytest.fixture(scope="module")
def database(kitti):
    return build_gt_database(kitti, CLASSES, progress=False)


def test_database_holds_the_points_of_every_training_object(kitti, database):
    infos = json.loads(database.read_text())["infos"]
    frames = Detection3DDataModule(str(kitti), augment=False).dataset("train")
    expected = sum(len(frames[i]["frame"].gt_names) for i in range(len(frames)))
    assert len(infos) == expected > 0 and {i["frame"] for i in infos} == {"000000", "000001",
                                                                          "000002"}  # fmt: skip
    for info in infos:
        pts = np.fromfile(kitti / info["path"], dtype=np.float32).reshape(-1, 4)
        assert len(pts) == info["num_points"]
        centred = np.r_[[0.0, 0.0, 0.0], info["box"][3:]]
        assert points_in_boxes(pts, centred[None]).all()  # stored relative to the box centre
        assert info["difficulty"] in (-1, 0, 1, 2)


def test_sampler_fills_frames_without_collisions(kitti, database):
    sampler = GTSampler(kitti, {"Car": 12, "Pedestrian": 6, "Cyclist": 6}, min_points=1)
    frame = Detection3DDataModule(str(kitti), augment=False).dataset("val")[0]
    points, boxes = frame["points"].numpy(), frame["gt_boxes"].numpy()
    names = [CLASSES[c] for c in frame["gt_labels"]]
    grown = 0
    for seed in range(5):
        p2, b2, n2 = sampler(points, boxes, names, np.random.default_rng(seed))
        assert (
            len(b2) == len(n2) and (b2[: len(boxes)] == boxes).all() and n2[: len(names)] == names
        )
        ov = bev_overlaps(b2, b2)
        assert not (ov & ~np.eye(len(b2), dtype=bool)).any()  # no two boxes overlap
        assert all(sum(n == c for n in n2) <= max(t, sum(n == c for n in names))
                   for c, t in sampler.sample_groups.items())  # fmt: skip
        new = b2[len(boxes) :]
        inside = points_in_boxes(p2, new)
        drawn = points_in_boxes(points, new).any(1)  # the frame's own points there are gone
        assert len(p2) == len(points) - drawn.sum() + inside.any(1).sum()
        grown += len(new)
    assert grown > 0


def test_datamodule_builds_the_database_on_first_use(tmp_path):
    root = write_world(tmp_path, seed=1, train=2, val=0, test=0, progress=False)
    data = Detection3DDataModule(str(root), gt_sampling={"Car": 20})
    plain = Detection3DDataModule(str(root), augment=True)
    loader = data.train_dataloader()
    assert (root / "gt_database" / "dbinfos_train.json").is_file()
    more = [len(loader.dataset[i]["gt_boxes"]) - len(plain.dataset("train", True)[i]["gt_boxes"])
            for i in range(2)]  # fmt: skip
    assert sum(more) > 0 and min(more) >= 0
    with pytest.raises(ValueError, match="not in class_names"):
        Detection3DDataModule(str(root), gt_sampling={"Truck": 3}).train_dataloader()
    with pytest.raises(DataError, match="gt_database"):
        GTSampler(tmp_path / "elsewhere", {"Car": 3})
