"""KITTI AP on hand-made prediction sets with known answers, and against the values the
official ``kitti_object_eval_python`` printed for the same random prediction files."""

import json
from pathlib import Path

import numpy as np
import pytest

from helpers.layouts.detection3d import write_kitti_eval_sets
from tessera.apps.detection3d.metrics import kitti_evaluate, lidar_evaluate
from tessera.datamodules.detection3d.labels import KittiLabels, parse_kitti_labels

DATA = Path(__file__).parent / "data"


def labels(objs: list[dict]) -> KittiLabels:
    """``objs``: dicts with name, x, z and optional h (2-D height), trunc, occ, score, dx."""
    n = len(objs)
    get = lambda k, d: np.array([o.get(k, d) for o in objs], dtype=float)  # noqa: E731
    bbox = np.c_[np.full(n, 100.0), np.full(n, 100.0), np.full(n, 150.0), 100 + get("h", 50)]
    bbox[:, 0] += get("u", 0)
    bbox[:, 2] += get("u", 0)
    loc = np.c_[get("x", 0) + get("dx", 0), np.full(n, 1.6), get("z", 20)]
    return KittiLabels(
        [o["name"] for o in objs], get("trunc", 0), get("occ", 0).astype(np.int64), np.zeros(n),
        bbox, np.tile([1.5, 1.6, 3.9], (n, 1)), loc, np.zeros(n), get("score", np.nan),
    )  # fmt: skip


def perfect(n: int, seed: int = 0):
    """n frames, one valid car each, detected 1 cm off with distinct scores."""
    rng = np.random.default_rng(seed)
    scores = rng.permutation(n) / (2 * n) + 0.25
    gts = [[{"name": "Car", "x": float(i % 7)}] for i in range(n)]
    dts = [
        [{"name": "Car", "x": float(i % 7), "dx": 0.01, "score": s}] for i, s in enumerate(scores)
    ]
    return gts, dts


def run(gts, dts, **kw):
    return kitti_evaluate([labels(g) for g in gts], [labels(d) for d in dts], **kw)


def test_perfect_detections_score_100_with_41_or_more_ground_truths():
    out = run(*perfect(45))
    for metric in ("2d", "bev", "3d"):
        for diff in ("easy", "moderate", "hard"):
            assert out[f"car_{metric}_ap_{diff}"] == pytest.approx(100.0)
            assert out[f"car_{metric}_ap_r11_{diff}"] == pytest.approx(100.0)
    assert out["pedestrian_bev_ap_moderate"] == 0.0  # no valid ground truth -> 0


def test_fewer_than_41_ground_truths_cap_r40():
    out = run(*perfect(10))
    # 10 thresholds reached: R40 = 9 of 40 points, R11 = 3 of 11 points (OpenPCDet issue 1060)
    assert out["car_bev_ap_moderate"] == pytest.approx(22.5)
    assert out["car_bev_ap_r11_moderate"] == pytest.approx(300 / 11)


def test_ignored_classes_dontcare_and_small_boxes():
    gts, dts = perfect(45)
    top = {"score": 0.99}
    # a Car detection on a Van and on a Person_sitting-free frame: Van is ignored for Car
    gts[0].append({"name": "Van", "x": 30.0})
    dts[0].append({"name": "Car", "x": 30.0, "dx": 0.01, **top})
    # a Car detection with a 2-D box shorter than 25 px is ignored at every difficulty
    dts[1].append({"name": "Car", "x": -30.0, "h": 20, **top})
    base = run(gts, dts)
    assert base["car_bev_ap_moderate"] == pytest.approx(100.0)
    assert base["car_2d_ap_easy"] == pytest.approx(100.0)
    # a detection inside a DontCare region is excused in 2-D only
    gts[2].append({"name": "DontCare", "x": -1000.0, "z": -1000.0, "u": 400.0})
    dts[2].append({"name": "Car", "x": -20.0, "u": 400.0, **top})
    out = run(gts, dts)
    assert out["car_2d_ap_moderate"] == pytest.approx(100.0)
    assert out["car_bev_ap_moderate"] < 100.0 and out["car_3d_ap_moderate"] < 100.0
    # the same detection without the DontCare box is a 2-D false positive too
    gts[2].pop()
    assert run(gts, dts)["car_2d_ap_moderate"] < 100.0


def test_difficulty_and_overlap_threshold():
    gts, dts = perfect(50)
    for g in gts[:5]:
        g[0]["h"] = 30  # 30 px: moderate/hard, not easy (> 40 px needed)
    for d in dts[:5]:
        d[0]["h"] = 30
    out = run(gts, dts)
    assert out["car_bev_ap_moderate"] == pytest.approx(100.0)
    # easy: the 5 small ground truths are ignored and their small detections too -> still 100
    assert out["car_bev_ap_easy"] == pytest.approx(100.0)
    for g in gts[:10]:
        g[0]["h"] = 30  # now only 40 valid easy ground truths: 39 of 40 recall points
    assert run(gts, dts)["car_bev_ap_easy"] == pytest.approx(97.5)
    # Car needs BEV IoU > 0.7: a 0.7 m shift along the 3.9 m length gives IoU 3.2 / 4.6 < 0.7
    for d in dts:
        d[0]["dx"] = 0.7
    out = run(gts, dts)
    assert out["car_bev_ap_moderate"] == 0.0
    assert run(gts, dts, min_overlaps={"Car": 0.5})["car_bev_ap_moderate"] == pytest.approx(100.0)


@pytest.mark.parametrize("seed", [11])
def test_agrees_with_official_evaluator(tmp_path, seed):
    """Random frames: DontCare, Van, Person_sitting, Truck, occlusion/truncation levels, small
    boxes, wrong classes; values from OpenPCDet's evaluator on the same files."""
    write_kitti_eval_sets(tmp_path, seed, 40, 0.06)
    ids = sorted(p.stem for p in (tmp_path / "gt").glob("*.txt"))
    gt = [parse_kitti_labels(tmp_path / "gt" / f"{i}.txt") for i in ids]
    dt = [parse_kitti_labels(tmp_path / "dt" / f"{i}.txt", with_score=True) for i in ids]
    official = json.loads((DATA / f"kitti_eval_official_seed{seed}.json").read_text())
    ours = kitti_evaluate(gt, dt)
    assert set(official) <= set(ours)
    for key, value in official.items():
        assert ours[key] == pytest.approx(value, abs=1e-6), key
    assert max(official.values()) > 30  # the set is not trivially all-zero


def test_lidar_frame_ap_without_camera_rules():
    rng = np.random.default_rng(0)
    gts, dts = [], []
    for _ in range(45):
        box = np.array(
            [[rng.uniform(0, 40), rng.uniform(-10, 10), -1, 3.9, 1.6, 1.5, rng.uniform(-3, 3)]]
        )
        gts.append((box, ["Vehicle"]))
        moved = box + [[0.05, 0, 0, 0, 0, 0, 0]]
        dts.append((moved, ["Vehicle"], np.array([rng.uniform(0.3, 1)])))
    out = lidar_evaluate(gts, dts, ["Vehicle"], {"Vehicle": 0.7})
    assert out["vehicle_bev_ap"] == pytest.approx(100.0) and out["vehicle_3d_ap"] == pytest.approx(
        100.0
    )
    dts[0] = (np.zeros((0, 7)), [], np.zeros(0))  # one missed -> recall 44/45
    assert out["vehicle_bev_ap_r11"] == pytest.approx(100.0)
    assert lidar_evaluate(gts, dts, ["Vehicle"])["vehicle_bev_ap"] < 100.0
